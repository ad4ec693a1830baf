// moe (docs/kernels.md): top-k routed SwiGLU experts, as five kernels run in order on one stream.
//   1. moeRoute     one warp per token: logits = x · routerᵀ (fp32), softmax, top-k (ties: lower
//                   expert first), weights renormalised to sum 1 -> topk_expert, topk_weight.
//   2. moeDispatch  one block: counts per expert, exclusive scan -> offsets (rows) and
//                   tile_offsets (BM-row tiles), then each (token, k) slot gets a row `pos` of
//                   the permuted order grouped by expert: perm_slot[pos] = slot,
//                   slot_pos[slot] = pos.
//   3. moeGemm<GATE_UP>  grouped GEMM over experts, permuted rows gathered straight from x:
//                   h[pos] = silu(x w1[e]ᵀ) ⊙ (x w3[e]ᵀ)   (SwiGLU fused in the epilogue)
//   4. moeGemm<!GATE_UP> y[pos] = h[pos] w2[e]ᵀ (fp32)
//   5. moeCombine   out[t] = Σ_k topk_weight[t,k] · y[slot_pos[t,k]] in k order (deterministic).
// The order of rows inside an expert's group depends on atomics, but each row's arithmetic does
// not, so results are bitwise reproducible.
//
// Operands: x [rows, H] T, router [E, H] T, w1 and w3 [E, I, H] T, w2 [E, H, I] T, out [rows, H]
// T, row-major; workspace as listed in MoeArgs (E ≤ moeMaxExperts()).
// Tiling of moeGemm: grid (ceil(rows·k / BM) + E, ceil(N / BN)); block x is an M-tile of the
// concatenated expert groups (tiles past tile_offsets[E] exit), block y an N-tile. A and B tiles
// of BK columns are staged in shared memory. f32: rows padded by one word, multiplied on a
// TileMap register tile with fp32 FMAs. bf16: tiles kept in bf16 (rows padded by 16 bytes, so
// fragment loads are conflict-free) and multiplied on the tensor cores with
// mma.sync.m16n8k16 (fp32 accumulators); 8 warps as 2 (M) × 4 (N), each a (BM/2)×(BN/4) tile.
#pragma once

#include "kernels/tile_gemm.cuh"

namespace mm {
namespace k {

template <typename T, int THREADS> __device__ void moeRoute(const MoeArgs &p) {
  __shared__ float logits[THREADS / 32][moeMaxExperts()];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const long long t = static_cast<long long>(blockIdx.x) * (THREADS / 32) + warp;
  if (t >= p.rows)
    return;
  const T *x = cptr<T>(p.x) + t * p.hidden;
  const T *router = cptr<T>(p.router);
  const int E = static_cast<int>(p.experts);
  for (int e = 0; e < E; ++e) {
    float s = 0.f;
    for (long long c = lane; c < p.hidden; c += 32)
      s = fmaf(ld(x, c), ld(router, e * p.hidden + c), s);
    s = warpSum(s);
    if (lane == 0)
      logits[warp][e] = s;
  }
  __syncwarp();
  if (lane != 0)
    return;
  float *pr = logits[warp];
  float mx = -infinity();
  for (int e = 0; e < E; ++e)
    mx = fmaxf(mx, pr[e]);
  float sum = 0.f;
  for (int e = 0; e < E; ++e) {
    pr[e] = expf(pr[e] - mx);
    sum += pr[e];
  }
  const int K = static_cast<int>(p.top_k);
  int *topE = mptr<int>(p.topk_expert) + t * K;
  float *topW = mptr<float>(p.topk_weight) + t * K;
  float kept = 0.f;
  for (int j = 0; j < K; ++j) {
    int best = -1;
    for (int e = 0; e < E; ++e)
      if (pr[e] >= 0.f && (best < 0 || pr[e] > pr[best]))
        best = e;
    topE[j] = best;
    topW[j] = pr[best] / sum;
    kept += topW[j];
    pr[best] = -1.f; // taken
  }
  for (int j = 0; j < K; ++j)
    topW[j] /= kept;
}

template <int BM, int THREADS> __device__ void moeDispatch(const MoeArgs &p) {
  __shared__ int counts[moeMaxExperts()], cursor[moeMaxExperts()], offs[moeMaxExperts()];
  const int E = static_cast<int>(p.experts);
  const long long slots = p.rows * p.top_k;
  const int *topE = cptr<int>(p.topk_expert);
  for (int e = threadIdx.x; e < E; e += THREADS) {
    counts[e] = 0;
    cursor[e] = 0;
  }
  __syncthreads();
  for (long long s = threadIdx.x; s < slots; s += THREADS)
    atomicAdd(&counts[topE[s]], 1);
  __syncthreads();
  if (threadIdx.x == 0) {
    int *offsets = mptr<int>(p.offsets), *tiles = mptr<int>(p.tile_offsets);
    int off = 0, tile = 0;
    for (int e = 0; e < E; ++e) {
      offs[e] = off;
      offsets[e] = off;
      tiles[e] = tile;
      off += counts[e];
      tile += (counts[e] + BM - 1) / BM;
    }
    offsets[E] = off;
    tiles[E] = tile;
  }
  __syncthreads();
  int *permSlot = mptr<int>(p.perm_slot), *slotPos = mptr<int>(p.slot_pos);
  for (long long s = threadIdx.x; s < slots; s += THREADS) {
    const int e = topE[s];
    const int pos = offs[e] + atomicAdd(&cursor[e], 1);
    permSlot[pos] = static_cast<int>(s);
    slotPos[s] = pos;
  }
}

template <int BM, int BN, int BK, int THREADS, bool GATE_UP>
__device__ void moeGemmTensorCores(const MoeArgs &p) {
  static_assert(THREADS == 256, "8 warps: 2 along M, 4 along N");
  static_assert(BM % 32 == 0 && BN % 32 == 0 && BK % 16 == 0, "mma tiles");
  // Staged rows of (BK+8) bf16 stay 16-byte aligned for the vector loads.
  constexpr int LDS = BK + 8; // bf16 elements per staged row (16 bytes of padding)
  constexpr int WM = BM / 2, WN = BN / 4, MT = WM / 16, NT = WN / 8, NB = GATE_UP ? 2 : 1;
  __shared__ __align__(16) unsigned short As[BM * LDS];
  __shared__ __align__(16) unsigned short Bs[NB][BN * LDS];
  __shared__ long long aRow[BM];

  const int E = static_cast<int>(p.experts);
  const int *tiles = cptr<int>(p.tile_offsets), *offsets = cptr<int>(p.offsets);
  const int tile = blockIdx.x;
  if (tile >= tiles[E])
    return;
  int e = 0;
  while (tile >= tiles[e + 1])
    ++e;
  const long long r0 = offsets[e] + static_cast<long long>(tile - tiles[e]) * BM;
  const long long r1 = r0 + BM < offsets[e + 1] ? r0 + BM : offsets[e + 1];
  const long long K = GATE_UP ? p.hidden : p.inter;
  const long long N = GATE_UP ? p.inter : p.hidden;
  const long long n0 = static_cast<long long>(blockIdx.y) * BN;
  for (int i = threadIdx.x; i < BM; i += THREADS) {
    const long long r = r0 + i;
    aRow[i] = r >= r1 ? -1 : GATE_UP ? (cptr<int>(p.perm_slot)[r] / p.top_k) * p.hidden
                                     : r * p.inter;
  }
  const unsigned short *A = GATE_UP ? cptr<unsigned short>(p.x) : cptr<unsigned short>(p.h);
  const unsigned short *Bsrc[2] = {
      GATE_UP ? cptr<unsigned short>(p.w1) + e * p.inter * p.hidden
              : cptr<unsigned short>(p.w2) + e * p.hidden * p.inter,
      cptr<unsigned short>(p.w3) + e * p.inter * p.hidden};

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int wm = (warp / 4) * WM, wn = (warp % 4) * WN, g = lane >> 2, t = lane & 3;
  float acc[NB][MT][NT][4];
#pragma unroll
  for (int b = 0; b < NB; ++b)
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int q = 0; q < 4; ++q)
          acc[b][i][j][q] = 0.f;

  for (long long k0 = 0; k0 < K; k0 += BK) {
    __syncthreads();
    if (K % 8 == 0) { // 16-byte loads: every row starts 16-byte aligned
      constexpr int V = BK / 8;
      for (int idx = threadIdx.x; idx < BM * V; idx += THREADS) {
        const int i = idx / V, kk = (idx % V) * 8;
        const long long row = aRow[i];
        uint4 v = make_uint4(0, 0, 0, 0);
        if (row >= 0 && k0 + kk < K)
          v = *reinterpret_cast<const uint4 *>(A + row + k0 + kk);
        *reinterpret_cast<uint4 *>(As + i * LDS + kk) = v;
      }
#pragma unroll
      for (int b = 0; b < NB; ++b)
        for (int idx = threadIdx.x; idx < BN * V; idx += THREADS) {
          const int n = idx / V, kk = (idx % V) * 8;
          uint4 v = make_uint4(0, 0, 0, 0);
          if (n0 + n < N && k0 + kk < K)
            v = *reinterpret_cast<const uint4 *>(Bsrc[b] + (n0 + n) * K + k0 + kk);
          *reinterpret_cast<uint4 *>(Bs[b] + n * LDS + kk) = v;
        }
    } else {
      for (int idx = threadIdx.x; idx < BM * BK; idx += THREADS) {
        const int i = idx / BK, kk = idx % BK;
        const long long row = aRow[i];
        As[i * LDS + kk] = row >= 0 && k0 + kk < K ? A[row + k0 + kk] : 0;
      }
#pragma unroll
      for (int b = 0; b < NB; ++b)
        for (int idx = threadIdx.x; idx < BN * BK; idx += THREADS) {
          const int n = idx / BK, kk = idx % BK;
          Bs[b][n * LDS + kk] =
              n0 + n < N && k0 + kk < K ? Bsrc[b][(n0 + n) * K + k0 + kk] : 0;
        }
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      unsigned a[MT][4];
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        const unsigned short *base = As + (wm + i * 16 + g) * LDS + kk + 2 * t;
        a[i][0] = *reinterpret_cast<const unsigned *>(base);
        a[i][1] = *reinterpret_cast<const unsigned *>(base + 8 * LDS);
        a[i][2] = *reinterpret_cast<const unsigned *>(base + 8);
        a[i][3] = *reinterpret_cast<const unsigned *>(base + 8 * LDS + 8);
      }
#pragma unroll
      for (int b = 0; b < NB; ++b)
#pragma unroll
        for (int j = 0; j < NT; ++j) {
          const unsigned short *base = Bs[b] + (wn + j * 8 + g) * LDS + kk + 2 * t;
          const unsigned bf[2] = {*reinterpret_cast<const unsigned *>(base),
                                  *reinterpret_cast<const unsigned *>(base + 8)};
#pragma unroll
          for (int i = 0; i < MT; ++i)
            mmaBf16(acc[b][i][j], a[i], bf);
        }
    }
  }
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const long long r = r0 + wm + i * 16 + g + (q >= 2 ? 8 : 0);
        const long long n = n0 + wn + j * 8 + 2 * t + (q & 1);
        if (r >= r1 || n >= N)
          continue;
        if (GATE_UP)
          st(mptr<bf16>(p.h), r * N + n, siluF(acc[0][i][j][q]) * acc[NB - 1][i][j][q]);
        else
          mptr<float>(p.y)[r * N + n] = acc[0][i][j][q];
      }
}

template <typename T, int BM, int BN, int BK, int THREADS, bool GATE_UP>
__device__ void moeGemmSimt(const MoeArgs &p) {
  constexpr int LK = BK + 1, NB = GATE_UP ? 2 : 1;
  __shared__ float As[BM * LK];
  __shared__ float Bs[NB][BN * LK];
  __shared__ long long aRow[BM]; // element offset of each A row, -1 past the group

  const int E = static_cast<int>(p.experts);
  const int *tiles = cptr<int>(p.tile_offsets), *offsets = cptr<int>(p.offsets);
  const int tile = blockIdx.x;
  if (tile >= tiles[E])
    return;
  int e = 0;
  while (tile >= tiles[e + 1])
    ++e;
  const long long r0 = offsets[e] + static_cast<long long>(tile - tiles[e]) * BM;
  const long long r1 = r0 + BM < offsets[e + 1] ? r0 + BM : offsets[e + 1];
  const long long K = GATE_UP ? p.hidden : p.inter;
  const long long N = GATE_UP ? p.inter : p.hidden;
  const long long n0 = static_cast<long long>(blockIdx.y) * BN;

  for (int i = threadIdx.x; i < BM; i += THREADS) {
    const long long r = r0 + i;
    if (r >= r1)
      aRow[i] = -1;
    else if (GATE_UP)
      aRow[i] = (cptr<int>(p.perm_slot)[r] / p.top_k) * p.hidden;
    else
      aRow[i] = r * p.inter;
  }
  const T *A = GATE_UP ? cptr<T>(p.x) : cptr<T>(p.h);
  const T *B0 = GATE_UP ? cptr<T>(p.w1) + e * p.inter * p.hidden : cptr<T>(p.w2) + e * p.hidden * p.inter;
  const T *B1 = cptr<T>(p.w3) + e * p.inter * p.hidden;

  using Map = TileMap<BM, BN, MicroEdge<BM>::value, MicroEdge<BN>::value, THREADS>;
  float acc0[Map::PER][MicroEdge<BM>::value][MicroEdge<BN>::value];
  float acc1[Map::PER][MicroEdge<BM>::value][MicroEdge<BN>::value];
  Map::zero(acc0);
  if (GATE_UP)
    Map::zero(acc1);
  for (long long k0 = 0; k0 < K; k0 += BK) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < BM * BK; idx += THREADS) {
      const int i = idx / BK, kk = idx % BK;
      const long long row = aRow[i];
      As[i * LK + kk] = row >= 0 && k0 + kk < K ? ld(A, row + k0 + kk) : 0.f;
    }
    for (int idx = threadIdx.x; idx < BN * BK; idx += THREADS) {
      const int n = idx / BK, kk = idx % BK;
      const bool in = n0 + n < N && k0 + kk < K;
      const long long off = (n0 + n) * K + k0 + kk;
      Bs[0][n * LK + kk] = in ? ld(B0, off) : 0.f;
      if (GATE_UP)
        Bs[NB - 1][n * LK + kk] = in ? ld(B1, off) : 0.f;
    }
    __syncthreads();
    auto a = [&](int i, int kk) { return As[i * LK + kk]; };
    Map::mac(acc0, BK, a, [&](int n, int kk) { return Bs[0][n * LK + kk]; });
    if (GATE_UP)
      Map::mac(acc1, BK, a, [&](int n, int kk) { return Bs[NB - 1][n * LK + kk]; });
  }
  if (GATE_UP) {
    T *h = mptr<T>(p.h);
#pragma unroll
    for (int q = 0; q < Map::PER; ++q) {
      if (!Map::valid(q))
        continue;
#pragma unroll
      for (int i = 0; i < MicroEdge<BM>::value; ++i)
#pragma unroll
        for (int j = 0; j < MicroEdge<BN>::value; ++j) {
          const long long r = r0 + Map::row(q, i), n = n0 + Map::col(q, j);
          if (r < r1 && n < N)
            st(h, r * N + n, siluF(acc0[q][i][j]) * acc1[q][i][j]);
        }
    }
  } else {
    float *y = mptr<float>(p.y);
    Map::each(acc0, [&](int i, int j, float &v) {
      const long long r = r0 + i, n = n0 + j;
      if (r < r1 && n < N)
        y[r * N + n] = v;
    });
  }
}

template <typename T, int BM, int BN, int BK, int THREADS, bool GATE_UP>
__device__ void moeGemm(const MoeArgs &p) {
  if constexpr (sizeof(T) == 2)
    moeGemmTensorCores<BM, BN, BK, THREADS, GATE_UP>(p);
  else
    moeGemmSimt<T, BM, BN, BK, THREADS, GATE_UP>(p);
}

template <typename T, int THREADS> __device__ void moeCombine(const MoeArgs &p) {
  const long long t = blockIdx.x;
  if (t >= p.rows)
    return;
  const float *y = cptr<float>(p.y);
  const float *w = cptr<float>(p.topk_weight) + t * p.top_k;
  const int *pos = cptr<int>(p.slot_pos) + t * p.top_k;
  T *out = mptr<T>(p.out) + t * p.hidden;
  for (long long c = threadIdx.x; c < p.hidden; c += THREADS) {
    float s = 0.f;
    for (long long j = 0; j < p.top_k; ++j)
      s = fmaf(w[j], y[static_cast<long long>(pos[j]) * p.hidden + c], s);
    st(out, c, s);
  }
}

} // namespace k
} // namespace mm
