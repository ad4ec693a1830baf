// moe (docs/kernels.md): top-k routed SwiGLU experts, as five kernels run in
// order on one stream.
//   1. moeRoute     one warp per token: logits = x · routerᵀ (fp32), softmax,
//   top-k (ties: lower
//                   expert first), weights renormalised to sum 1 ->
//                   topk_expert, topk_weight.
//   2. moeDispatch  one block: counts per expert, exclusive scan -> offsets
//   (rows) and
//                   tile_offsets (BM-row tiles), then each (token, k) slot gets
//                   a row `pos` of the permuted order grouped by expert:
//                   perm_slot[pos] = slot, slot_pos[slot] = pos.
//   3. moeGemm<GATE_UP>  grouped GEMM over experts, permuted rows gathered
//   straight from x:
//                   h[pos] = silu(x w1[e]ᵀ) ⊙ (x w3[e]ᵀ)   (SwiGLU fused in the
//                   epilogue)
//   4. moeGemm<!GATE_UP> y[pos] = h[pos] w2[e]ᵀ (stored in T, like h)
//   5. moeCombine   out[t] = Σ_k topk_weight[t,k] · y[slot_pos[t,k]] in k order
//                   (with MoeArgs::add: out_scale·that + add_scale·add[t])
//   (deterministic).
// bf16 route with H % 8 == 0 and H <= 1024 (moeRouteStaged): the block's tokens
// are staged in shared memory and each warp computes a group of experts for all
// of them (same per-lane sums, so the same logits bitwise); bf16 combine: one
// wave of blocks strides over the 16-byte vectors, the rest exit at once.
// The order of rows inside an expert's group depends on atomics, but each row's
// arithmetic does not, so results are bitwise reproducible.
//
// Operands: x [rows, H] T, router [E, H] T, w1 and w3 [E, I, H] T, w2 [E, H, I]
// T, out [rows, H] T, row-major; workspace as listed in MoeArgs (E ≤
// moeMaxExperts()). Tiling of moeGemm: grid (ceil(rows·k / BM) + E, ceil(N /
// BN)); block x is an M-tile of the concatenated expert groups (tiles past
// tile_offsets[E] exit), block y an N-tile. A and B tiles of BK columns are
// staged in shared memory. f32: rows padded by one word, multiplied on a
// TileMap register tile with fp32 FMAs. bf16: tiles kept in bf16 (rows padded
// by 16 bytes, so fragment loads are conflict-free) and multiplied on the
// tensor cores with mma.sync.m16n8k16 (fp32 accumulators); 8 warps as 2 (M) × 4
// (N), each a (BM/2)×(BN/4) tile. bf16 on sm_90a with tiles 128×128×64 (the
// tile pass picks them when H and I are multiples of 8): moeGemmWgmma below,
// persistent warp-specialised CTAs (one per multiprocessor, 384 threads) over
// (M-tile, N-tile) work items: a producer warpgroup fills a 4-stage cp.async
// ring of 128-byte-swizzled shared memory (full/empty mbarriers), two consumer
// warpgroups multiply with wgmma m64n256k16, and each consumer warp writes its
// 16 output rows through a 2 KB swizzled staging tile as full 128-byte rows
// (SwiGLU there with __fdividef, MM_MOE_FAST_SILU; 0 gives siluF, bitwise the
// mma.sync form's h); the other bf16 shapes and targets keep the mma.sync form.
#pragma once

#include "kernels/async_copy.cuh"
#include "kernels/tile_gemm.cuh"

namespace mm {
namespace k {

/// Softmax and top-k of the E logits of token t (lane 0 of the token's warp
/// picks, in expert order; the other lanes exponentiate).
__device__ __forceinline__ void moeRouteTopK(const MoeArgs &p, long long t,
                                             float *pr, int lane) {
  const int E = static_cast<int>(p.experts);
  float mx = -infinity();
  for (int e = lane; e < E; e += 32)
    mx = fmaxf(mx, pr[e]);
  mx = warpMax(mx); // order-free, so the same as the sequential max
  for (int e = lane; e < E; e += 32)
    pr[e] = expf(pr[e] - mx);
  __syncwarp();
  if (lane != 0)
    return;
  float sum = 0.f;
  for (int e = 0; e < E; ++e)
    sum += pr[e];
  const int K = static_cast<int>(p.top_k);
  int *topE = mptr<int>(p.topk_expert) + t * K;
  float *topW = mptr<float>(p.topk_weight) + t * K;
  float kept = 0.f;
  if (K <= 8) { // the same picks and arithmetic, kept in registers
    float wv[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      if (j >= K)
        break;
      int best = -1;
      float bv = 0.f; // pr[best]
      for (int e = 0; e < E; ++e) {
        const float v = pr[e];
        if (v != -1.f && (best < 0 || v > bv)) {
          best = e;
          bv = v;
        }
      }
      topE[j] = best;
      wv[j] = pr[best] / sum;
      kept += wv[j];
      pr[best] = -1.f; // taken
    }
#pragma unroll
    for (int j = 0; j < 8; ++j)
      if (j < K)
        topW[j] = wv[j] / kept;
    return;
  }
  for (int j = 0; j < K; ++j) {
    // A NaN probability (from a non-finite input, which the run reports)
    // still yields an untaken expert index, never -1.
    int best = -1;
    for (int e = 0; e < E; ++e)
      if (pr[e] != -1.f && (best < 0 || pr[e] > pr[best]))
        best = e;
    topE[j] = best;
    topW[j] = pr[best] / sum;
    kept += topW[j];
    pr[best] = -1.f; // taken
  }
  for (int j = 0; j < K; ++j)
    topW[j] /= kept;
}

/// moeRoute for bf16 with H % 8 == 0 and H <= 1024: the block's W =
/// THREADS/32 tokens are staged in shared memory (bf16) once; warp w then
/// computes experts XE·w .. XE·w + XE - 1 (and every W·XE-th group after) for
/// all of them, k-chunk by k-chunk, so each staged x chunk read serves XE
/// experts and each router chunk W tokens. Lane l still sums its elements
/// l·8 + 256 i + 0..7 in the order of the warp-per-token loop below and
/// warpSum reduces, so the logits are bitwise the same (moe_grad recomputes
/// them that way).
template <int THREADS, int XE>
__device__ void moeRouteStaged(const MoeArgs &p,
                               float (&logits)[THREADS / 32][moeMaxExperts()],
                               uint4 (&xs)[THREADS / 32][128]) {
  constexpr int W = THREADS / 32, HMAX = 1024, CH = HMAX / 256;
  // xs[tk][q]: elements 8 q .. 8 q + 7 of token tk, i.e. chunk i = q / 32 of
  // lane q % 32 (a warp's reads of one chunk are consecutive).
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const long long t0 = static_cast<long long>(blockIdx.x) * W;
  const int H = static_cast<int>(p.hidden), E = static_cast<int>(p.experts);
  const int nTok =
      p.rows - t0 < W ? static_cast<int>(p.rows > t0 ? p.rows - t0 : 0) : W;
  const unsigned short *x = cptr<unsigned short>(p.x);
  for (int i = threadIdx.x; i < nTok * (H / 8); i += THREADS) {
    const int tk = i / (H / 8), q = i % (H / 8);
    xs[tk][q] = *reinterpret_cast<const uint4 *>(x + (t0 + tk) * H + q * 8);
  }
  __syncthreads();
  const unsigned short *router = cptr<unsigned short>(p.router);
  for (int e0 = warp * XE; e0 < E; e0 += W * XE) {
    float s[XE][W];
#pragma unroll
    for (int xe = 0; xe < XE; ++xe)
#pragma unroll
      for (int tk = 0; tk < W; ++tk)
        s[xe][tk] = 0.f;
#pragma unroll
    for (int i = 0; i < CH; ++i) {
      const int c = lane * 8 + 256 * i;
      if (c >= H)
        break;
      float r[XE][8];
#pragma unroll
      for (int xe = 0; xe < XE; ++xe) {
        const uint4 v =
            e0 + xe < E ? *reinterpret_cast<const uint4 *>(
                              router + static_cast<long long>(e0 + xe) * H + c)
                        : make_uint4(0, 0, 0, 0);
        const unsigned u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          r[xe][2 * q] = __uint_as_float(u[q] << 16);
          r[xe][2 * q + 1] = __uint_as_float(u[q] & 0xffff0000u);
        }
      }
#pragma unroll
      for (int tk = 0; tk < W; ++tk) {
        if (tk < nTok) {
          const uint4 v = xs[tk][i * 32 + lane];
          const unsigned u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
          for (int q = 0; q < 4; ++q) {
            const float lo = __uint_as_float(u[q] << 16),
                        hi = __uint_as_float(u[q] & 0xffff0000u);
#pragma unroll
            for (int xe = 0; xe < XE; ++xe) {
              s[xe][tk] = fmaf(lo, r[xe][2 * q], s[xe][tk]);
              s[xe][tk] = fmaf(hi, r[xe][2 * q + 1], s[xe][tk]);
            }
          }
        }
      }
    }
#pragma unroll
    for (int xe = 0; xe < XE; ++xe)
#pragma unroll
      for (int tk = 0; tk < W; ++tk)
        if (e0 + xe < E && tk < nTok) {
          const float v = warpSum(s[xe][tk]);
          if (lane == 0)
            logits[tk][e0 + xe] = v;
        }
  }
  __syncthreads();
  if (warp < nTok)
    moeRouteTopK(p, t0 + warp, logits[warp], lane);
}

template <typename T, int THREADS> __device__ void moeRoute(const MoeArgs &p) {
  __shared__ float logits[THREADS / 32][moeMaxExperts()];
  if constexpr (sizeof(T) == 2 && THREADS <= 256) {
    if (p.hidden % 8 == 0 && p.hidden <= 1024) {
      __shared__ uint4 xs[THREADS / 32][128]; // 1024 bf16 per token
      if (p.experts <= THREADS / 32)
        moeRouteStaged<THREADS, 1>(p, logits, xs);
      else
        moeRouteStaged<THREADS, 2>(p, logits, xs); // 4: slower (moe3.md)
      return;
    }
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const long long t =
      static_cast<long long>(blockIdx.x) * (THREADS / 32) + warp;
  if (t >= p.rows)
    return;
  const T *x = cptr<T>(p.x) + t * p.hidden;
  const T *router = cptr<T>(p.router);
  const int E = static_cast<int>(p.experts);
  for (int e = 0; e < E; ++e) {
    float s = 0.f;
    if (sizeof(T) == 2 && p.hidden % 8 == 0) { // 16-byte vectors of 8 bf16
      const unsigned short *xs = reinterpret_cast<const unsigned short *>(x);
      const unsigned short *rs =
          reinterpret_cast<const unsigned short *>(router) + e * p.hidden;
      for (long long c = lane * 8; c < p.hidden; c += 256) {
        const uint4 xv = *reinterpret_cast<const uint4 *>(xs + c);
        const uint4 rv = *reinterpret_cast<const uint4 *>(rs + c);
        const unsigned xu[4] = {xv.x, xv.y, xv.z, xv.w},
                       ru[4] = {rv.x, rv.y, rv.z, rv.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          s = fmaf(__uint_as_float(xu[i] << 16), __uint_as_float(ru[i] << 16),
                   s);
          s = fmaf(__uint_as_float(xu[i] & 0xffff0000u),
                   __uint_as_float(ru[i] & 0xffff0000u), s);
        }
      }
    } else {
      for (long long c = lane; c < p.hidden; c += 32)
        s = fmaf(ld(x, c), ld(router, e * p.hidden + c), s);
    }
    s = warpSum(s);
    if (lane == 0)
      logits[warp][e] = s;
  }
  __syncwarp();
  moeRouteTopK(p, t, logits[warp], lane);
}

template <int BM, int THREADS> __device__ void moeDispatch(const MoeArgs &p) {
  __shared__ int counts[moeMaxExperts()], cursor[moeMaxExperts()],
      offs[moeMaxExperts()];
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
  constexpr int LDS =
      BK + 8; // bf16 elements per staged row (16 bytes of padding)
  constexpr int WM = BM / 2, WN = BN / 4, MT = WM / 16, NT = WN / 8,
                NB = GATE_UP ? 2 : 1;
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
  const long long r0 =
      offsets[e] + static_cast<long long>(tile - tiles[e]) * BM;
  const long long r1 = r0 + BM < offsets[e + 1] ? r0 + BM : offsets[e + 1];
  const long long K = GATE_UP ? p.hidden : p.inter;
  const long long N = GATE_UP ? p.inter : p.hidden;
  const long long n0 = static_cast<long long>(blockIdx.y) * BN;
  for (int i = threadIdx.x; i < BM; i += THREADS) {
    const long long r = r0 + i;
    aRow[i] = r >= r1   ? -1
              : GATE_UP ? (cptr<int>(p.perm_slot)[r] / p.top_k) * p.hidden
                        : r * p.inter;
  }
  const unsigned short *A =
      GATE_UP ? cptr<unsigned short>(p.x) : cptr<unsigned short>(p.h);
  const unsigned short *Bsrc[2] = {
      GATE_UP ? cptr<unsigned short>(p.w1) + e * p.inter * p.hidden
              : cptr<unsigned short>(p.w2) + e * p.hidden * p.inter,
      cptr<unsigned short>(p.w3) + e * p.inter * p.hidden};

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int wm = (warp / 4) * WM, wn = (warp % 4) * WN, g = lane >> 2,
            t = lane & 3;
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
            v = *reinterpret_cast<const uint4 *>(Bsrc[b] + (n0 + n) * K + k0 +
                                                 kk);
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
          const unsigned short *base =
              Bs[b] + (wn + j * 8 + g) * LDS + kk + 2 * t;
          const unsigned bf[2] = {
              *reinterpret_cast<const unsigned *>(base),
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
          st(mptr<bf16>(p.h), r * N + n,
             siluF(acc[0][i][j][q]) * acc[NB - 1][i][j][q]);
        else
          st(mptr<bf16>(p.y), r * N + n, acc[0][i][j][q]);
      }
}

// ---- sm_90a: the grouped GEMMs on wgmma (bf16, tile_m = tile_n = 128, tile_k
// = 64) ----------
//
// One CTA = 3 warpgroups (moeWgmmaThreads) computes a 128-row M-tile of one
// expert's group against a 128-column N-tile (down: 256). Warpgroup 0 is the
// producer: it gathers A rows (through perm_slot) and B rows with 16-byte
// cp.async (zero-filled past the group, N and K) into 128-byte-swizzled stages,
// moeWgmmaStages deep, across work items; each thread's copies arrive on the
// stage's full mbarrier (cp.async.mbarrier.arrive.noinc), and a stage is
// refilled once its empty mbarrier says both consumers are done with it.
// Warpgroups 1 and 2 (rows 0..63, 64..127) wait on full, fence to the async
// proxy and issue m64n256k16 wgmmas, one group left in flight; for gate/up the
// B tile holds 128 rows of w1 then the same rows of w3, so gate and up come out
// side by side and the SwiGLU is applied in registers. setmaxnreg gives the
// producer 104 and the consumers 200 registers. No __syncthreads after the
// set-up. Epilogue: 16 KB of static shared memory (8 warps × 16 rows × 64
// columns bf16) on top of moeWgmmaSmemBytes (216 KB in all). Needs K % 8 == 0
// (H and I), which the tile pass checks before it picks this form.

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define MM_MOE_WGMMA 1
#ifndef MM_MOE_FAST_SILU
#define MM_MOE_FAST_SILU 1
#endif
__device__ __forceinline__ void wgmmaBf16N256(float (&d)[128],
                                              unsigned long long da,
                                              unsigned long long db,
                                              int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
      "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"
      "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,"
      "%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,"
      "%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,"
      "%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%"
      "111,"
      "%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%"
      "126,%127"
      "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),
        "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]),
        "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
        "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]),
        "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]),
        "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),
        "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),
        "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]),
        "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]),
        "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]),
        "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]),
        "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]),
        "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]),
        "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]),
        "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]),
        "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]),
        "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
        "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]),
        "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]),
        "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]),
        "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]),
        "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]),
        "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]),
        "+f"(d[126]), "+f"(d[127])
      : "l"(da), "l"(db), "r"(accumulate));
}
#endif

/// wgmma shared-memory descriptor of a K-major tile of 128-byte rows, 128-byte
/// swizzle, 8-row core-matrix groups 1024 bytes apart (the tile starts
/// 1024-byte aligned).
__device__ __forceinline__ unsigned long long wgmmaDesc(unsigned addr) {
  return static_cast<unsigned long long>((addr & 0x3FFFF) >> 4) | (1ull << 16) |
         (64ull << 32) | (1ull << 62);
}
template <int N> __device__ __forceinline__ void fenceRegs(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
    asm volatile("" : "+f"(d[i])::"memory");
}


template <bool GATE_UP> __device__ void moeGemmWgmma(const MoeArgs &p) {
#if defined(__CUDA_ARCH__) && !defined(MM_MOE_WGMMA)
  static_assert(GATE_UP && !GATE_UP,
                "the wgmma MoE tiles need the sm_90a target");
#elif defined(MM_MOE_WGMMA)
  // Warp-specialised: warpgroup 0 copies, warpgroups 1 and 2 multiply
  // (moeWgmmaThreads()).
  constexpr int BM = 128, BK = 64, S = moeWgmmaStages();
  constexpr int BN = GATE_UP ? 128 : 256; // output columns of a work item
  constexpr int BROWS = 256; // B rows per stage = wgmma N per warpgroup
  constexpr int A_BYTES = BM * BK * 2, STAGE_BYTES = (BM + BROWS) * BK * 2;
  constexpr unsigned CONSUMER_WARPS = 8;
  extern __shared__ unsigned char moeSmemRaw[];
  __shared__ int tilesS[moeMaxExperts() + 1], offsS[moeMaxExperts() + 1];
  __shared__ __align__(8) unsigned long long fullBar[S], emptyBar[S];
  __shared__ __align__(16) unsigned epi[CONSUMER_WARPS][16 * 32];
  const unsigned smem0 = (sharedAddr(moeSmemRaw) + 1023u) & ~1023u;

  const int E = static_cast<int>(p.experts);
  for (int i = threadIdx.x; i <= E; i += blockDim.x) {
    tilesS[i] = cptr<int>(p.tile_offsets)[i];
    offsS[i] = cptr<int>(p.offsets)[i];
  }
  if (threadIdx.x == 0)
    for (int s = 0; s < S; ++s) {
      mbarInit(sharedAddr(&fullBar[s]),
               128); // every producer thread, once its copies land
      mbarInit(sharedAddr(&emptyBar[s]),
               CONSUMER_WARPS); // lane 0 of every consumer warp
    }
  __syncthreads();
  const long long K = GATE_UP ? p.hidden : p.inter;
  const long long N = GATE_UP ? p.inter : p.hidden;
  const int NT = static_cast<int>((N + BN - 1) / BN);
  const int items = tilesS[E] * NT; // work item w: M-tile w / NT, N-tile w % NT
  const int KT = static_cast<int>((K + BK - 1) / BK);
  const int myItems =
      blockIdx.x < items ? (items - blockIdx.x + gridDim.x - 1) / gridDim.x : 0;
  // The M-tile's expert and rows [r0, r1) of the permuted order.
  auto locate = [&](int mt, int &e, long long &r0, long long &r1) {
    e = 0;
    while (mt >= tilesS[e + 1])
      ++e;
    r0 = offsS[e] + static_cast<long long>(mt - tilesS[e]) * BM;
    r1 = r0 + BM < offsS[e + 1] ? r0 + BM : offsS[e + 1];
  };
  const int wg = threadIdx.x >> 7;

  if (wg == 0) {
    // ---- producer: stage k-tile g into slot g % S once the consumers released
    // it ----------
    asm volatile("setmaxnreg.dec.sync.aligned.u32 104;\n" ::: "memory");
    // Thread tid copies 16-byte chunk c = tid % 8 of rows tid / 8 + 16 j (A
    // rows 0..127, then B rows 0..255); the chunk lands at c ^ (row % 8) of its
    // 128-byte row (the 128-byte swizzle wgmma reads).
    const int tid = threadIdx.x, c = tid & 7, rs = tid >> 3;
    const unsigned swz = static_cast<unsigned>((c ^ (rs & 7)) << 4);
    const unsigned short *A =
        GATE_UP ? cptr<unsigned short>(p.x) : cptr<unsigned short>(p.h);
    long long g = 0;
    for (int it = 0; it < myItems; ++it) {
      const int w = blockIdx.x + it * gridDim.x;
      int e;
      long long r0, r1;
      locate(w / NT, e, r0, r1);
      const long long n0 = static_cast<long long>(w % NT) * BN;
      const unsigned short *aSrc[BM / 16];
      bool aIn[BM / 16];
#pragma unroll
      for (int j = 0; j < BM / 16; ++j) {
        const long long r = r0 + rs + 16 * j;
        aIn[j] = r < r1;
        const long long row =
            !aIn[j]   ? 0
            : GATE_UP ? (cptr<int>(p.perm_slot)[r] / p.top_k) * p.hidden
                      : r * p.inter;
        aSrc[j] = A + row + c * 8;
      }
      // gate/up: B rows 0..127 from w1, then the same rows of w3; down: 256
      // rows of w2
      const unsigned short *B0 =
          GATE_UP ? cptr<unsigned short>(p.w1) + e * p.inter * p.hidden
                  : cptr<unsigned short>(p.w2) + e * p.hidden * p.inter;
      const unsigned short *B1 =
          GATE_UP ? cptr<unsigned short>(p.w3) + e * p.inter * p.hidden
                  : B0 + 128 * K;
      const long long bCol = n0 + rs; // output column of B row rs (j = 0)
      for (int kt = 0; kt < KT; ++kt, ++g) {
        const int slot = static_cast<int>(g % S);
        if (g >= S)
          mbarWait(sharedAddr(&emptyBar[slot]),
                   static_cast<unsigned>(((g / S) & 1) ^ 1));
        const unsigned base = smem0 + static_cast<unsigned>(slot * STAGE_BYTES);
        const long long k0 = static_cast<long long>(kt) * BK;
        const bool kIn = k0 + c * 8 < K;
#pragma unroll
        for (int j = 0; j < BM / 16; ++j)
          cpAsync16(base + (rs + 16 * j) * 128 + swz, aSrc[j] + (kIn ? k0 : 0),
                    aIn[j] && kIn);
#pragma unroll
        for (int j = 0; j < BROWS / 16; ++j) {
          const int jj = j % 8; // row rs + 16 jj of B0 (j < 8) or of B1
          const long long col = bCol + 16 * jj + (GATE_UP ? 0 : (j / 8) * 128);
          const bool in = kIn && col < N;
          cpAsync16(base + A_BYTES + (rs + 16 * j) * 128 + swz,
                    in ? (j < 8 ? B0 : B1) + (bCol + 16 * jj) * K + k0 + c * 8
                       : A,
                    in);
        }
        mbarArriveCpAsync(sharedAddr(&fullBar[slot]));
      }
    }
    asm volatile("cp.async.wait_all;\n" ::: "memory");
    return;
  }

  // ---- consumers: warpgroup 1 multiplies A rows 0..63, warpgroup 2
  // rows 64..127 -------------
  asm volatile("setmaxnreg.inc.sync.aligned.u32 200;\n" ::: "memory");
  const int cw = wg - 1;
  float acc[BROWS / 2];
#pragma unroll
  for (int i = 0; i < BROWS / 2; ++i)
    acc[i] = 0.f;
  const int w = (threadIdx.x >> 5) & 3, l = threadIdx.x & 31;
  unsigned short *out =
      GATE_UP ? mptr<unsigned short>(p.h) : mptr<unsigned short>(p.y);
  long long g = 0; // k-tiles multiplied so far, over all work items of the CTA
  for (int it = 0; it < myItems; ++it) {
    for (int kt = 0; kt < KT; ++kt, ++g) {
      const int slot = static_cast<int>(g % S);
      mbarWait(sharedAddr(&fullBar[slot]), static_cast<unsigned>((g / S) & 1));
      // the cp.async (generic proxy) writes, seen through the barrier, before
      // wgmma reads them
      asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
      const unsigned a =
          smem0 + static_cast<unsigned>(slot * STAGE_BYTES) + cw * (64 * 128);
      const unsigned b =
          smem0 + static_cast<unsigned>(slot * STAGE_BYTES) + A_BYTES;
      fenceRegs(acc);
      asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
      for (int kk = 0; kk < BK / 16;
           ++kk) // a work item's first product overwrites
        wgmmaBf16N256(acc, wgmmaDesc(a + kk * 32), wgmmaDesc(b + kk * 32),
                      kt != 0 || kk != 0);
      asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
      asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");
      // k-tile g - 1 (same item) is multiplied: its slot goes back to the
      // producer
      if (kt != 0 && l == 0)
        mbarArrive(sharedAddr(&emptyBar[(g - 1) % S]));
    }
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
    fenceRegs(acc);
    if (l == 0)
      mbarArrive(sharedAddr(&emptyBar[(g - 1) % S]));
    const int item = blockIdx.x + it * gridDim.x;
    int e;
    long long r0, r1;
    locate(item / NT, e, r0, r1);
    // Accumulator layout (m64n256): register 4 j + q of thread (warp w, lane l)
    // of the warpgroup is row 16 w + l / 4 + 8 (q / 2), column 8 j + 2 (l % 4)
    // + q % 2. Gate/up: j < 16 gate, j + 16 up, of the same output column.
    auto value = [&](int j, int h, int q) -> float {
      if constexpr (GATE_UP) {
        const float g = acc[4 * j + 2 * h + q],
                    u = acc[4 * (j + BN / 8) + 2 * h + q];
#if MM_MOE_FAST_SILU
        return __fdividef(g, 1.0f + __expf(-g)) * u;
#else
        return siluF(g) * u;
#endif
      } else {
        return acc[4 * j + 2 * h + q];
      }
    };
    // Through the warp's 16 × 64-column staging tile (16-byte chunks swizzled
    // by row, conflict-free both ways): 8 lanes store one row's 128 bytes.
    {
      const long long rW = r0 + cw * 64 + w * 16;
      const long long nItem = static_cast<long long>(item % NT) * BN;
      unsigned *stage = epi[cw * 4 + w];
      const int g = l >> 2, t = l & 3;
#pragma unroll
      for (int c = 0; c < BN / 64; ++c) {
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
          for (int jj = 0; jj < 8; ++jj)
            stage[(g + 8 * h) * 32 + ((jj ^ g) << 2) + t] =
                packBf16(value(8 * c + jj, h, 0), value(8 * c + jj, h, 1));
        __syncwarp();
#pragma unroll
        for (int it = 0; it < 4; ++it) {
          const int id = it * 32 + l, row = id >> 3, ch = id & 7;
          const uint4 v = *reinterpret_cast<const uint4 *>(
              &stage[row * 32 + ((ch ^ (row & 7)) << 2)]);
          const long long r = rW + row, n = nItem + c * 64 + ch * 8;
          if (r < r1 && n < N) // N % 8 == 0: a chunk is in or out
            *reinterpret_cast<uint4 *>(out + r * N + n) = v;
        }
        __syncwarp();
      }
    }
  }
#endif
}

template <typename T, int BM, int BN, int BK, int THREADS, bool GATE_UP>
__device__ void moeGemmSimt(const MoeArgs &p) {
  constexpr int LK = BK + 1, NB = GATE_UP ? 2 : 1;
  __shared__ float As[BM * LK];
  __shared__ float Bs[NB][BN * LK];
  __shared__ long long
      aRow[BM]; // element offset of each A row, -1 past the group

  const int E = static_cast<int>(p.experts);
  const int *tiles = cptr<int>(p.tile_offsets), *offsets = cptr<int>(p.offsets);
  const int tile = blockIdx.x;
  if (tile >= tiles[E])
    return;
  int e = 0;
  while (tile >= tiles[e + 1])
    ++e;
  const long long r0 =
      offsets[e] + static_cast<long long>(tile - tiles[e]) * BM;
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
  const T *B0 = GATE_UP ? cptr<T>(p.w1) + e * p.inter * p.hidden
                        : cptr<T>(p.w2) + e * p.hidden * p.inter;
  const T *B1 = cptr<T>(p.w3) + e * p.inter * p.hidden;

  using Map =
      TileMap<BM, BN, MicroEdge<BM>::value, MicroEdge<BN>::value, THREADS>;
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
      Map::mac(acc1, BK, a,
               [&](int n, int kk) { return Bs[NB - 1][n * LK + kk]; });
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
  if constexpr (sizeof(T) == 2 && moeWgmmaTiles(BM, BN, BK)) {
    // launched with moeWgmmaThreads() (3 warpgroups), not THREADS
    moeGemmWgmma<GATE_UP>(p);
  } else if constexpr (sizeof(T) == 2)
    moeGemmTensorCores<BM, BN, BK, THREADS, GATE_UP>(p);
  else
    moeGemmSimt<T, BM, BN, BK, THREADS, GATE_UP>(p);
}

template <typename T, int THREADS>
__device__ void moeCombine(const MoeArgs &p) {
  const T *y = cptr<T>(p.y);
  if (sizeof(T) == 2 && p.hidden % 8 == 0) {
    // 16-byte vectors of 8 bf16, same arithmetic; the rows·H/8 vectors spread
    // over all blocks.
    const long long vecs = p.rows * (p.hidden / 8);
    // One wave of blocks (2048 threads per multiprocessor) strides over the
    // vectors; the others exit at once.
    unsigned nsm;
    asm("mov.u32 %0, %%nsmid;" : "=r"(nsm));
    const unsigned used = min(gridDim.x, nsm * (2048u / THREADS));
    if (blockIdx.x >= used)
      return;
    for (long long v8 =
             blockIdx.x * static_cast<long long>(THREADS) + threadIdx.x;
         v8 < vecs; v8 += static_cast<long long>(used) * THREADS) {
      const long long t = v8 / (p.hidden / 8), c = (v8 % (p.hidden / 8)) * 8;
      const float *w = cptr<float>(p.topk_weight) + t * p.top_k;
      const int *pos = cptr<int>(p.slot_pos) + t * p.top_k;
      T *out = mptr<T>(p.out) + t * p.hidden;
      float s[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      if (p.top_k == 2) { // both rows in flight together, same arithmetic
        const long long p0 = pos[0], p1 = pos[1];
        const float w0 = w[0], w1 = w[1];
        const uint4 a = *reinterpret_cast<const uint4 *>(
            reinterpret_cast<const unsigned short *>(y) + p0 * p.hidden + c);
        const uint4 b = *reinterpret_cast<const uint4 *>(
            reinterpret_cast<const unsigned short *>(y) + p1 * p.hidden + c);
        const unsigned ua[4] = {a.x, a.y, a.z, a.w},
                       ub[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          s[2 * i] = fmaf(w0, __uint_as_float(ua[i] << 16), s[2 * i]);
          s[2 * i + 1] =
              fmaf(w0, __uint_as_float(ua[i] & 0xffff0000u), s[2 * i + 1]);
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          s[2 * i] = fmaf(w1, __uint_as_float(ub[i] << 16), s[2 * i]);
          s[2 * i + 1] =
              fmaf(w1, __uint_as_float(ub[i] & 0xffff0000u), s[2 * i + 1]);
        }
      } else
        for (long long j = 0; j < p.top_k; ++j) {
          const uint4 v = *reinterpret_cast<const uint4 *>(
              reinterpret_cast<const unsigned short *>(y) + pos[j] * p.hidden +
              c);
          const unsigned u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            s[2 * i] = fmaf(w[j], __uint_as_float(u[i] << 16), s[2 * i]);
            s[2 * i + 1] =
                fmaf(w[j], __uint_as_float(u[i] & 0xffff0000u), s[2 * i + 1]);
          }
        }
      if (p.add) { // out = out_scale·Σ + add_scale·add
        const uint4 r = *reinterpret_cast<const uint4 *>(
            cptr<unsigned short>(p.add) + t * p.hidden + c);
        const unsigned ur[4] = {r.x, r.y, r.z, r.w};
        const float so = static_cast<float>(p.out_scale),
                    sa = static_cast<float>(p.add_scale);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          s[2 * i] = so * s[2 * i] + sa * __uint_as_float(ur[i] << 16);
          s[2 * i + 1] =
              so * s[2 * i + 1] + sa * __uint_as_float(ur[i] & 0xffff0000u);
        }
      }
      *reinterpret_cast<uint4 *>(reinterpret_cast<unsigned short *>(out) + c) =
          make_uint4(packBf16(s[0], s[1]), packBf16(s[2], s[3]),
                     packBf16(s[4], s[5]), packBf16(s[6], s[7]));
    }
    return;
  }
  const long long t = blockIdx.x;
  if (t >= p.rows)
    return;
  const float *w = cptr<float>(p.topk_weight) + t * p.top_k;
  const int *pos = cptr<int>(p.slot_pos) + t * p.top_k;
  T *out = mptr<T>(p.out) + t * p.hidden;
  const T *add = p.add ? cptr<T>(p.add) + t * p.hidden : nullptr;
  for (long long c = threadIdx.x; c < p.hidden; c += THREADS) {
    float s = 0.f;
    for (long long j = 0; j < p.top_k; ++j)
      s = fmaf(w[j], ld(y, static_cast<long long>(pos[j]) * p.hidden + c), s);
    if (add)
      s = static_cast<float>(p.out_scale) * s +
          static_cast<float>(p.add_scale) * ld(add, c);
    st(out, c, s);
  }
}

} // namespace k
} // namespace mm
