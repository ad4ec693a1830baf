// moe_grad (docs/kernels.md): backward of the top-k routed SwiGLU MoE block,
// the forward recomputed, as ten launches on one stream (moeGradPlan):
//   _route     moeRoute of kernels/moe.cuh (the forward's fp32 router, so the
//              selection is the forward's): topk_expert, topk_weight.
//   _dispatch  moeDispatch (BM = 128): the slots grouped by expert, offsets
//              and 128-row tile_offsets, perm_slot / slot_pos; dot = 0.
// Grouped GEMMs (C[m][n] = Σ_k A(m,k) B(n,k)); "slot-M" GEMMs run over
// M-tiles of the expert groups (grid.x = tile, as the forward), the
// weight-gradient GEMMs reduce over an expert's slots (K = its slot count,
// grid.z = expert; each CTA owns its f32 output tile: plain stores, no
// atomics, zeros for an expert without slots). Rows of x and dy are gathered
// through perm_slot (slot s is token perm_slot[s] / top_k), w_s is the slot's
// routing weight:
//   _gateup  [a | c] = x_s·[w1_e | w3_e]ᵀ (M slots, N I, K H) -> acf (f32),
//            hb = w_s·silu(a)·c. The B tile is 64 rows of w1 then the same 64
//            of w3, so one CTA holds gate and up of the same outputs.
//   _dh      g = dy_s·w2_e (N I, K H; B read [k][n]); epilogue: dot[s] +=
//            Σ_i h_i g_i (= dy·y, with h = silu(a)·c in fp32 from acf), dh =
//            w_s·g, da = dh·c·σ(a)(1 + a(1 − σ(a))), dc = dh·a·σ(a) -> dac.
//   _dw2     dw2_e = dy_sᵀ·hb over the expert's slots (M H, N I).
//   _dw13    [dw1_e; dw3_e] = [da | dc]ᵀ·x_s (M 2I, N H): rows < I go to dw1.
//   _dx      dxs = [da | dc]·[w1_e; w3_e] (N H, K 2I; B read [k][n]).
// Then per token (one warp; bf16 with H ≤ 1024 and E ≤ 8: the x row and each
// lane's pieces of the router and dxs rows loaded up front, so their
// latencies overlap): _router recomputes the logits and softmax p,
// dw_j = dot[slot j], dp_j = (dw_j − Σ_k w_k dw_k)/P on the top-k,
// z = p(dp − Σ p·dp) -> z[t], and dx[t] = Σ_j dxs[slot j] + routerᵀz;
// _drouter sums z[t]·x[t] over RS row splits into `part`, _drouter_sum adds
// the splits into drouter.
//
// GEMM engines, one tiling (128×128 outputs, 256 threads) so one plan serves
// both element types. bf16 with H and I multiples of 8 runs on the tensor
// cores: mma.sync m16n8k16 (fp32 accumulators), 8 warps as 2 (M) × 4 (N),
// each a 64×32 tile; tiles of BK = 64 staged by 16-byte cp.async in a
// 3-stage ring (moeGradSmemBytes, two CTAs per multiprocessor); operands
// stored K-contiguous ([m][k], rows of 64+8 bf16) are read with ldmatrix,
// operands stored M/N-contiguous ([k][m], rows of 128+8) with ldmatrix.trans
// (the 16-byte padding makes both conflict-free). The epilogue goes through
// shared memory (an f32 [128][132] tile), so each thread finishes 8
// consecutive outputs of a row with 16-byte loads and stores, and the 16
// threads of a row reduce its dot share with shuffles. Other shapes and f32:
// a SIMT engine on the same tiles (8×8 outputs per thread, BK = 8).
// On sm_90a the bf16 GEMMs run on wgmma instead: _gateup_wg (the forward's
// moeGemmWgmma), _dh_dw2_wg and _dw13_dx_wg (moeGradWgPair: persistent,
// producer warpgroup + 2 consumer warpgroups, 128×256 items, A K-major or
// MN-major, B MN-major, read through the wgmma transpose bits). Measured on
// an H200 at rows 8192, H = I = 1024, E 8, top-2 (bf16, ms): _dh_dw2_wg 0.381
// (mma.sync _dh_dw2 0.343), _dw13_dx_wg 0.548 (_dw13_dx 0.572); the whole
// plan 1.16 (bench/results/moegrad3.md). Nsight Compute puts the wgmma pairs
// at 28% of the tensor pipe (the gate/up GEMM at 49%) with L2 and DRAM far
// from busy and the warps waiting on L1TEX: the cp.async producer is latency
// bound, not the epilogue. Tried without gain (moegrad3.md): ping-pong
// consumers on 128×128 items (one item per consumer warpgroup, the epilogue
// overlapped; 2×m64n128 reads B twice and the items load 33% more per flop:
// slower), bf16 a/c (fails the 2e-2 drouter bound at one token), an
// expert-major order of the pairs' work, evict-first weight-gradient stores,
// 256-byte L2 prefetch of the copies. Operand
// addressing is one descriptor (GOp) per operand: stored row r of a tile (an
// M/N index for [m][k] operands, the K index for [k][m] ones) is
// base0 + r'·ld, or base1 + (r − split)·ld past `split` (w1 then w3), r' the
// row itself or its token through perm_slot, zero past rowLim rows or colLim
// columns.
#pragma once

#include "kernels/moe.cuh"
#include "kernels/moe_grad.h"

namespace mm {
namespace k {

__device__ __forceinline__ MoeArgs moeGradFwdArgs(const MoeGradArgs &a) {
  MoeArgs m{}; // fields it does not set (out, h, y, add, ...) stay 0
  m.x = a.x;
  m.router = a.router;
  m.w1 = a.w1;
  m.w2 = a.w2;
  m.w3 = a.w3;
  m.topk_expert = a.topk_expert;
  m.topk_weight = a.topk_weight;
  m.slot_pos = a.slot_pos;
  m.perm_slot = a.perm_slot;
  m.offsets = a.offsets;
  m.tile_offsets = a.tile_offsets;
  m.rows = a.rows;
  m.hidden = a.hidden;
  m.experts = a.experts;
  m.inter = a.inter;
  m.top_k = a.top_k;
  return m;
}

/// One GEMM operand as stored rows (see the file comment). With `idx`, stored
/// row r is source row idx[r] / idxDiv (the token of a permuted slot).
template <typename T> struct GOp {
  const T *b0, *b1;
  long long ld, split, rowLim, colLim;
  const int *idx;
  int idxDiv;
  __device__ bool ok(long long r, long long c) const {
    const long long rr = r < split ? r : r - split;
    return rr < rowLim && c < colLim;
  }
  /// Start of stored row r (column 0); r must be ok.
  __device__ const T *row(long long r) const {
    const bool lo = r < split;
    long long rr = lo ? r : r - split;
    if (idx)
      rr = static_cast<unsigned>(idx[rr]) / static_cast<unsigned>(idxDiv);
    return (lo ? b0 : b1) + rr * ld;
  }
  __device__ float get(long long r, long long c) const {
    return ok(r, c) ? toF32(row(r)[c]) : 0.f;
  }
};

/// GOp::split of an operand that is one array.
constexpr long long kMoeGradNoSplit = 1ll << 62;

enum MoeGradOp { kGateUp, kDh, kDw2, kDw13, kDx };

/// The problem of one CTA: operands, K, and where its tile lies.
template <typename T> struct GTile {
  GOp<T> A, B;
  long long K;
  int e;
  long long r0, r1; // slot-M GEMMs: permuted rows [r0, r1); else m0 in r0
  long long n0;     // first output column (gate/up: of I)
};

template <int OP> struct OpTraits {
  static constexpr bool A_KM = OP == kDw2 || OP == kDw13; // A stored [k][m]
  static constexpr bool B_KN = OP != kGateUp;             // B stored [k][n]
  static constexpr bool SPLIT = OP == kGateUp;
  static constexpr bool SLOT_M = OP != kDw2 && OP != kDw13;
};

template <typename T, int OP>
__device__ bool moeGradSetup(const MoeGradArgs &p, GTile<T> &t, int bx, int by,
                             int bz) {
  constexpr int TB = moeGradTile();
  const long long H = p.hidden, I = p.inter;
  constexpr long long big = kMoeGradNoSplit;
  const int E = static_cast<int>(p.experts), KK = static_cast<int>(p.top_k);
  (void)big;
  (void)KK;
  const int *tiles = cptr<int>(p.tile_offsets), *offs = cptr<int>(p.offsets);
  const int *perm = cptr<int>(p.perm_slot);
  if (OpTraits<OP>::SLOT_M) {
    const int tile = bx;
    if (tile >= tiles[E])
      return false;
    int e = 0;
    while (tile >= tiles[e + 1])
      ++e;
    t.e = e;
    t.r0 = offs[e] + static_cast<long long>(tile - tiles[e]) * TB;
    t.r1 = t.r0 + TB < offs[e + 1] ? t.r0 + TB : offs[e + 1];
  } else {
    t.e = bz;
    t.r0 = static_cast<long long>(bx) * TB;
    t.r1 = offs[t.e]; // first slot of the expert
  }
  const int e = t.e;
  const long long rows = t.r1 - t.r0;
  const T *x = cptr<T>(p.x), *dy = cptr<T>(p.dy), *hb = cptr<T>(p.hb),
          *dac = cptr<T>(p.dac);
  const T *w1 = cptr<T>(p.w1) + e * I * H, *w3 = cptr<T>(p.w3) + e * I * H,
          *w2 = cptr<T>(p.w2) + e * H * I;
  if (OP == kGateUp) {
    t.n0 = static_cast<long long>(by) * (TB / 2);
    t.K = H;
    t.A = {x, x, H, big, rows, H, perm + t.r0, KK};
    t.B = {w1 + t.n0 * H, w3 + t.n0 * H, H, TB / 2, I - t.n0, H, nullptr, 1};
  } else if (OP == kDh) {
    t.n0 = static_cast<long long>(by) * TB;
    t.K = H;
    t.A = {dy, dy, H, big, rows, H, perm + t.r0, KK};
    t.B = {w2 + t.n0, w2, I, big, H, I - t.n0, nullptr, 1};
  } else if (OP == kDx) {
    t.n0 = static_cast<long long>(by) * TB;
    t.K = 2 * I;
    t.A = {dac + t.r0 * 2 * I, dac, 2 * I, big, rows, 2 * I, nullptr, 1};
    t.B = {w1 + t.n0, w3 + t.n0, H, I, I, H - t.n0, nullptr, 1};
  } else {
    const long long s0 = offs[e], cnt = offs[e + 1] - offs[e];
    t.n0 = static_cast<long long>(by) * TB;
    t.K = cnt;
    if (OP == kDw2) {
      t.A = {dy + t.r0, dy, H, big, cnt, H - t.r0, perm + s0, KK};
      t.B = {hb + s0 * I + t.n0, hb, I, big, cnt, I - t.n0, nullptr, 1};
    } else {
      t.A = {dac + s0 * 2 * I + t.r0,
             dac,
             2 * I,
             big,
             cnt,
             2 * I - t.r0,
             nullptr,
             1};
      t.B = {x + t.n0, x, H, big, cnt, H - t.n0, perm + s0, KK};
    }
  }
  return true;
}

/// Routing weight of permuted slot r.
__device__ __forceinline__ float moeGradSlotWeight(const MoeGradArgs &p,
                                                   long long r) {
  return cptr<float>(p.topk_weight)[cptr<int>(p.perm_slot)[r]];
}

/// Epilogue of `n` (≤ 8) consecutive outputs of row m (local to the tile),
/// columns c.. (local): v the products, u the up products (gate/up GEMM).
/// Returns this piece's share of dot[slot] (the _dh GEMM; else 0). The
/// tensor-core engine calls it with n = 8 (vector loads and stores), the SIMT
/// engine with n = 1.
template <typename T, int OP, int NV>
__device__ __forceinline__ float moeGradStore(const MoeGradArgs &p,
                                              const GTile<T> &t, int m, int c,
                                              const float *v, const float *u) {
  const long long H = p.hidden, I = p.inter;
  const long long r = t.r0 + m, col = t.n0 + c;
  const bool vec = NV == 8;
  if (OP == kGateUp) {
    if (r >= t.r1 || col >= I)
      return 0.f;
    const float w = moeGradSlotWeight(p, r);
    float *acf = mptr<float>(p.acf) + r * 2 * I + col;
    T *hb = mptr<T>(p.hb) + r * I + col;
    float h[NV];
#pragma unroll
    for (int i = 0; i < NV; ++i)
      h[i] = w * siluF(v[i]) * u[i];
    if (vec) {
#pragma unroll
      for (int i = 0; i < NV; i += 4) {
        *reinterpret_cast<float4 *>(acf + i) =
            make_float4(v[i], v[i + 1], v[i + 2], v[i + 3]);
        *reinterpret_cast<float4 *>(acf + I + i) =
            make_float4(u[i], u[i + 1], u[i + 2], u[i + 3]);
      }
      *reinterpret_cast<uint4 *>(hb) =
          make_uint4(packBf16(h[0], h[1]), packBf16(h[2], h[3]),
                     packBf16(h[4], h[5]), packBf16(h[6], h[7]));
    } else {
      for (int i = 0; i < NV; ++i) {
        acf[i] = v[i];
        acf[I + i] = u[i];
        st(hb, i, h[i]);
      }
    }
    return 0.f;
  } else if (OP == kDh) {
    if (r >= t.r1 || col >= I)
      return 0.f;
    const float w = moeGradSlotWeight(p, r);
    const float *acf = cptr<float>(p.acf) + r * 2 * I + col;
    T *dac = mptr<T>(p.dac) + r * 2 * I + col;
    float a[NV], cu[NV], da[NV], dc[NV], dot = 0.f;
    if (vec) {
#pragma unroll
      for (int i = 0; i < NV; i += 4) {
        const float4 a4 = *reinterpret_cast<const float4 *>(acf + i);
        const float4 c4 = *reinterpret_cast<const float4 *>(acf + I + i);
        a[i] = a4.x, a[i + 1] = a4.y, a[i + 2] = a4.z, a[i + 3] = a4.w;
        cu[i] = c4.x, cu[i + 1] = c4.y, cu[i + 2] = c4.z, cu[i + 3] = c4.w;
      }
    } else {
      for (int i = 0; i < NV; ++i) {
        a[i] = acf[i];
        cu[i] = acf[I + i];
      }
    }
#pragma unroll
    for (int i = 0; i < NV; ++i) {
      const float sg = sigmoidF(a[i]);
      dot = fmaf(a[i] * sg * cu[i], v[i], dot); // h·(dy w2)
      const float dh = w * v[i];
      da[i] = dh * cu[i] * sg * (1.f + a[i] * (1.f - sg));
      dc[i] = dh * a[i] * sg;
    }
    if (vec) {
      *reinterpret_cast<uint4 *>(dac) =
          make_uint4(packBf16(da[0], da[1]), packBf16(da[2], da[3]),
                     packBf16(da[4], da[5]), packBf16(da[6], da[7]));
      *reinterpret_cast<uint4 *>(dac + I) =
          make_uint4(packBf16(dc[0], dc[1]), packBf16(dc[2], dc[3]),
                     packBf16(dc[4], dc[5]), packBf16(dc[6], dc[7]));
    } else {
      for (int i = 0; i < NV; ++i) {
        st(dac, i, da[i]);
        st(dac, I + i, dc[i]);
      }
    }
    return dot;
  } else {
    // plain stores: dxs (T), or the f32 weight gradients
    long long lim, off;
    T *outT = nullptr;
    float *outF = nullptr;
    if (OP == kDx) {
      if (r >= t.r1 || col >= H)
        return 0.f;
      outT = mptr<T>(p.dxs) + r * H + col;
    } else if (OP == kDw2) {
      if (r >= H || col >= I)
        return 0.f;
      outF = mptr<float>(p.dw2) + (t.e * H + r) * I + col;
    } else {
      if (r >= 2 * I || col >= H)
        return 0.f;
      outF = mptr<float>(r < I ? p.dw1 : p.dw3) +
             (t.e * I + (r < I ? r : r - I)) * H + col;
    }
    (void)lim;
    (void)off;
    if (vec) {
      if (OP == kDx)
        *reinterpret_cast<uint4 *>(outT) =
            make_uint4(packBf16(v[0], v[1]), packBf16(v[2], v[3]),
                       packBf16(v[4], v[5]), packBf16(v[6], v[7]));
      else
#pragma unroll
        for (int i = 0; i < NV; i += 4)
          *reinterpret_cast<float4 *>(outF + i) =
              make_float4(v[i], v[i + 1], v[i + 2], v[i + 3]);
    } else {
      for (int i = 0; i < NV; ++i) {
        if (OP == kDx)
          st(outT, i, v[i]);
        else
          outF[i] = v[i];
      }
    }
    return 0.f;
  }
}

extern __shared__ __align__(16) unsigned char moeGradSmem[];

// ---- SIMT engine (any T, any shape) ---------------------------------------
template <typename T, int OP>
__device__ void moeGradGemmSimt(const MoeGradArgs &p, int bx, int by, int bz) {
  constexpr int TB = 128, BK = 8;
  using Tr = OpTraits<OP>;
  float(*As)[TB] = reinterpret_cast<float(*)[TB]>(moeGradSmem);
  float(*Bs)[TB] = reinterpret_cast<float(*)[TB]>(moeGradSmem) + BK;
  GTile<T> t;
  if (!moeGradSetup<T, OP>(p, t, bx, by, bz))
    return;
  const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j)
      acc[i][j] = 0.f;
  for (long long k0 = 0; k0 < t.K; k0 += BK) {
    __syncthreads();
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int idx = tid + 256 * q;
      if (Tr::A_KM) {
        const int m = idx & 127, kk = idx >> 7;
        As[kk][m] = k0 + kk < t.K ? t.A.get(k0 + kk, m) : 0.f;
      } else {
        const int m = idx >> 3, kk = idx & 7;
        As[kk][m] = k0 + kk < t.K ? t.A.get(m, k0 + kk) : 0.f;
      }
      if (Tr::B_KN) {
        const int n = idx & 127, kk = idx >> 7;
        Bs[kk][n] = k0 + kk < t.K ? t.B.get(k0 + kk, n) : 0.f;
      } else {
        const int n = idx >> 3, kk = idx & 7;
        Bs[kk][n] = k0 + kk < t.K ? t.B.get(n, k0 + kk) : 0.f;
      }
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[8], b[8];
#pragma unroll
      for (int i = 0; i < 8; ++i)
        a[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 8; ++j)
        b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j)
          acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
  }
  // thread (ty, tx) holds rows ty + 16 i, columns tx + 16 j; gate/up: the
  // up product of column tx + 16 j (j < 4) is column tx + 16 (j + 4).
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    float dot = 0.f;
#pragma unroll
    for (int j = 0; j < (Tr::SPLIT ? 4 : 8); ++j)
      dot += moeGradStore<T, OP, 1>(p, t, ty + 16 * i, tx + 16 * j, &acc[i][j],
                                    &acc[i][Tr::SPLIT ? j + 4 : j]);
    if (OP == kDh && t.r0 + ty + 16 * i < t.r1)
      atomicAdd(mptr<float>(p.dot) + t.r0 + ty + 16 * i, dot);
  }
}

// ---- tensor-core engine (bf16, H % 8 == 0, I % 8 == 0) ---------------------
__device__ __forceinline__ void ldsm4(unsigned (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm4t(unsigned (&r)[4], unsigned addr) {
  asm volatile(
      "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
      : "r"(addr));
}
template <int N> __device__ __forceinline__ void cpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

template <int OP>
__device__ void moeGradGemmTc(const MoeGradArgs &p, int bx, int by, int bz) {
  using T = bf16;
  using Tr = OpTraits<OP>;
  constexpr int TB = 128, BK = moeGradBK(), ST = moeGradStages();
  constexpr int LDK = BK + 8, LDT = TB + 8; // bf16 per stored row
  constexpr int TILE_BYTES = moeGradTileBytes();
  static_assert(TB * LDK * 2 <= TILE_BYTES && BK * LDT * 2 <= TILE_BYTES,
                "stage tiles");
  constexpr int LDC = TB + 4; // f32 epilogue tile [128][132]
  static_assert(TB * LDC * 4 <= ST * 2 * TILE_BYTES, "epilogue tile");
  GTile<T> t;
  if (!moeGradSetup<T, OP>(p, t, bx, by, bz))
    return;
  const unsigned sBase = sharedAddr(moeGradSmem);
  const int tid = threadIdx.x, warp = tid >> 5, l = tid & 31;
  const int wm = (warp >> 2) * 64, wn = warp & 3, g = l >> 2, tq = l & 3;
  const int KT = static_cast<int>((t.K + BK - 1) / BK);

  // Copies of a stage: 1024 16-byte chunks of A and of B, 4 each per thread.
  // [m][k] tiles: chunk idx = tid + 256 q is row idx / 8 (fixed over k),
  // column 8 (idx % 8); [k][m] tiles: row idx / 16 (a k), column 8 (idx % 16).
  constexpr int CH = BK / 8;
  const unsigned short *aRow[4], *bRow[4];
  bool aOk[4], bOk[4];
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const int idx = tid + 256 * q;
    if (!Tr::A_KM) {
      const int r = idx / CH;
      aOk[q] = t.A.ok(r, 0);
      aRow[q] = reinterpret_cast<const unsigned short *>(aOk[q] ? t.A.row(r)
                                                                : t.A.b0);
    }
    if (!Tr::B_KN) {
      const int r = idx / CH;
      bOk[q] = t.B.ok(r, 0);
      bRow[q] = reinterpret_cast<const unsigned short *>(bOk[q] ? t.B.row(r)
                                                                : t.B.b0);
    }
  }
  // The weight-gradient GEMMs gather their [k][n] x (dw13) or [k][m] dy (dw2)
  // rows through perm_slot, one k row per stage row: the perm_slot entries of
  // a stage are loaded one stage ahead (gRaw), so the copies never wait on
  // them.
  constexpr bool A_GK = OP == kDw2, B_GK = OP == kDw13, GK = A_GK || B_GK;
  int gRaw[4] = {0, 0, 0, 0};
  auto fetchIdx = [&](long long k0) {
    const GOp<T> &op = A_GK ? t.A : t.B;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const long long k = k0 + (tid >> 4) + 16 * q;
      gRaw[q] = k < t.K ? op.idx[k] : 0;
    }
  };
  auto gathered = [&](const GOp<T> &op, int q, int c) {
    return op.b0 +
           static_cast<long long>(static_cast<unsigned>(gRaw[q]) /
                                  static_cast<unsigned>(op.idxDiv)) *
               op.ld +
           c;
  };
  auto loadStage = [&](int slot, long long k0) {
    const unsigned aS = sBase + slot * 2 * TILE_BYTES, bS = aS + TILE_BYTES;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int idx = tid + 256 * q;
      if (Tr::A_KM) {
        const int r = idx >> 4, c = (idx & 15) * 8;
        const bool v = k0 + r < t.K && t.A.ok(k0 + r, c);
        const T *src = !v     ? t.A.b0
                       : A_GK ? gathered(t.A, q, c)
                              : t.A.row(k0 + r) + c;
        cpAsync16(aS + (r * LDT + c) * 2, src, v);
      } else {
        const int r = idx / CH, c = (idx % CH) * 8;
        const bool v = aOk[q] && k0 + c < t.K;
        cpAsync16(aS + (r * LDK + c) * 2, aRow[q] + (v ? k0 + c : 0), v);
      }
      if (Tr::B_KN) {
        const int r = idx >> 4, c = (idx & 15) * 8;
        const bool v = k0 + r < t.K && t.B.ok(k0 + r, c);
        const T *src = !v     ? t.B.b0
                       : B_GK ? gathered(t.B, q, c)
                              : t.B.row(k0 + r) + c;
        cpAsync16(bS + (r * LDT + c) * 2, src, v);
      } else {
        const int r = idx / CH, c = (idx % CH) * 8;
        const bool v = bOk[q] && k0 + c < t.K;
        cpAsync16(bS + (r * LDK + c) * 2, bRow[q] + (v ? k0 + c : 0), v);
      }
    }
    if (GK)
      fetchIdx(k0 + BK); // the next stage's rows
  };
  if (GK)
    fetchIdx(0);

  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q)
        acc[i][j][q] = 0.f;

#pragma unroll
  for (int s = 0; s < ST - 1; ++s) {
    if (s < KT)
      loadStage(s, static_cast<long long>(s) * BK);
    cpAsyncCommit();
  }
  for (int kt = 0; kt < KT; ++kt) {
    cpAsyncWait<ST - 2>();
    __syncthreads();
    {
      const int nk = kt + ST - 1;
      if (nk < KT)
        loadStage(nk % ST, static_cast<long long>(nk) * BK);
      cpAsyncCommit();
    }
    const unsigned aS = sBase + (kt % ST) * 2 * TILE_BYTES,
                   bS = aS + TILE_BYTES;
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      unsigned a[4][4], b[4][2];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        if (Tr::A_KM)
          ldsm4t(a[i], aS + ((kk + (l & 7) + (l >> 4) * 8) * LDT + wm + i * 16 +
                             ((l >> 3) & 1) * 8) *
                                2);
        else
          ldsm4(a[i],
                aS + ((wm + i * 16 + (l & 15)) * LDK + kk + (l >> 4) * 8) * 2);
      }
#pragma unroll
      for (int pr = 0; pr < 2; ++pr) {
        const int nb = Tr::SPLIT ? pr * 64 + wn * 16 : wn * 32 + pr * 16;
        unsigned r[4];
        if (Tr::B_KN)
          ldsm4t(r, bS + ((kk + (l & 7) + ((l >> 3) & 1) * 8) * LDT + nb +
                          (l >> 4) * 8) *
                             2);
        else
          ldsm4(r, bS + ((nb + (l & 7) + (l >> 4) * 8) * LDK + kk +
                         ((l >> 3) & 1) * 8) *
                            2);
        b[2 * pr][0] = r[0];
        b[2 * pr][1] = r[1];
        b[2 * pr + 1][0] = r[2];
        b[2 * pr + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
          mmaBf16(acc[i][j], a[i], b[j]);
    }
  }
  cpAsyncWait<0>();
  __syncthreads();

  // Epilogue through shared memory: acc[i][j][q] is tile row wm + 16i + g +
  // 8(q/2), column col(j) + 2tq + q%2 (gate/up: columns 0..63 gate, 64..127
  // up); then each thread takes 8-column pieces of rows (16 threads a row).
  float *Cs = reinterpret_cast<float *>(moeGradSmem);
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int col =
          Tr::SPLIT ? (j >> 1) * 64 + wn * 16 + (j & 1) * 8 : wn * 32 + j * 8;
#pragma unroll
      for (int h = 0; h < 2; ++h)
        *reinterpret_cast<float2 *>(Cs + (wm + 16 * i + g + 8 * h) * LDC + col +
                                    2 * tq) =
            make_float2(acc[i][j][2 * h], acc[i][j][2 * h + 1]);
    }
  __syncthreads();
  constexpr int PIECES = Tr::SPLIT ? 8 : 16; // 8-column pieces per row
#pragma unroll 2
  for (int q = 0; q < TB * PIECES / 256; ++q) {
    const int idx = tid + 256 * q, m = idx / PIECES, c = (idx % PIECES) * 8;
    float v[8], u[8];
#pragma unroll
    for (int i = 0; i < 8; i += 4) {
      const float4 v4 = *reinterpret_cast<const float4 *>(Cs + m * LDC + c + i);
      v[i] = v4.x, v[i + 1] = v4.y, v[i + 2] = v4.z, v[i + 3] = v4.w;
      if (Tr::SPLIT) {
        const float4 u4 =
            *reinterpret_cast<const float4 *>(Cs + m * LDC + 64 + c + i);
        u[i] = u4.x, u[i + 1] = u4.y, u[i + 2] = u4.z, u[i + 3] = u4.w;
      } else {
        u[i] = u[i + 1] = u[i + 2] = u[i + 3] = 0.f;
      }
    }
    float dot = moeGradStore<T, OP, 8>(p, t, m, c, v, u);
    if (OP == kDh) { // the 16 pieces of row m are 16 consecutive lanes
#pragma unroll
      for (int o = 8; o > 0; o >>= 1)
        dot += __shfl_xor_sync(0xffffffffu, dot, o);
      if ((tid & 15) == 0 && t.r0 + m < t.r1)
        atomicAdd(mptr<float>(p.dot) + t.r0 + m, dot);
    }
  }
}

/// One CTA of GEMM OP: tile (bx, by) of a slot-M GEMM, (bx, by, expert bz)
/// of a weight-gradient GEMM.
template <typename T, int OP>
__device__ void moeGradGemm(const MoeGradArgs &p, int bx, int by, int bz) {
  if constexpr (sizeof(T) == 2) {
    if (p.hidden % 8 == 0 && p.inter % 8 == 0) {
      moeGradGemmTc<OP>(p, bx, by, bz);
      return;
    }
  }
  moeGradGemmSimt<T, OP>(p, bx, by, bz);
}

/// Two independent GEMMs in one launch (1-D grid): first the CTAs of weight
/// gradient W (grid gx × gy × experts), then those of slot-M GEMM M (grid
/// moeGradMTiles × my); together they fill the last wave that each alone
/// would leave partly idle.
template <typename T, int W, int M>
__device__ void moeGradPair(const MoeGradArgs &p) {
  const long long H = p.hidden, I = p.inter, TB = moeGradTile();
  const long long gx = moeGradDivUp(W == kDw2 ? H : 2 * I, TB),
                  gy = moeGradDivUp(W == kDw2 ? I : H, TB);
  const long long nW = gx * gy * p.experts;
  const long long mt = moeGradMTiles(p.rows, p.top_k, p.experts);
  const long long b = blockIdx.x;
  if (b < nW) {
    moeGradGemm<T, W>(p, static_cast<int>(b % gx),
                      static_cast<int>((b / gx) % gy),
                      static_cast<int>(b / (gx * gy)));
  } else {
    const long long b2 = b - nW;
    moeGradGemm<T, M>(p, static_cast<int>(b2 % mt), static_cast<int>(b2 / mt),
                      0);
  }
}

// ---- sm_90a: the gate/up GEMM on wgmma -------------------------------------
// moeGemmWgmma<GATE_UP = true> of kernels/moe.cuh (warp-specialised,
// persistent, 128×128 work items, 4-stage cp.async ring, m64n256k16 with gate
// and up side by side) with the backward's epilogue. Launched as _gateup_wg
// (moeWgmmaThreads, moeWgmmaSmemBytes, moeWgmmaGrid CTAs) next to _gateup;
// moeGradUseWgmma picks which of the two does the work (the other returns).
template <typename T> __device__ bool moeGradUseWgmma(const MoeGradArgs &p) {
#if defined(MM_MOE_WGMMA)
  // wgmma == 2: the executor asks for the mma.sync forms (moe_grad.h)
  return sizeof(T) == 2 && p.hidden % 8 == 0 && p.inter % 8 == 0 &&
         p.wgmma != 2;
#else
  (void)p;
  return false;
#endif
}

__device__ void moeGradGateUpWgmma(const MoeGradArgs &p) {
#if defined(MM_MOE_WGMMA)
  constexpr bool GATE_UP = true;
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
    const unsigned short *A = cptr<unsigned short>(p.x);
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
    const long long rBase = r0 + cw * 64 + w * 16 + (l >> 2);
    const long long cBase =
        static_cast<long long>(item % NT) * BN + 2 * (l & 3);
    // Epilogue (moe_grad): a and c in f32 (acf), hb = w_s·silu(a)·c.
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const long long r = rBase + 8 * h;
      if (r >= r1)
        continue;
      const float wr = moeGradSlotWeight(p, r);
      float *acf = mptr<float>(p.acf) + r * 2 * N;
      unsigned *hb =
          reinterpret_cast<unsigned *>(mptr<unsigned short>(p.hb) + r * N);
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) {
        const long long n = cBase + 8 * j; // N % 8 == 0: the pair is in
        if (n >= N)
          continue;
        const float a0 = acc[4 * j + 2 * h], a1 = acc[4 * j + 2 * h + 1];
        const float c0 = acc[4 * (j + BN / 8) + 2 * h],
                    c1 = acc[4 * (j + BN / 8) + 2 * h + 1];
        *reinterpret_cast<float2 *>(acf + n) = make_float2(a0, a1);
        *reinterpret_cast<float2 *>(acf + N + n) = make_float2(c0, c1);
        hb[n / 2] = packBf16(wr * siluF(a0) * c0, wr * siluF(a1) * c1);
      }
    }
  }
#else
  (void)p;
#endif
}

#if defined(MM_MOE_WGMMA)
/// wgmma m64n256k16 (bf16 in, f32 accumulators) with the operands' major-ness
/// as immediates: TA / TB = 1 reads A / B MN-major from shared memory.
template <int TA, int TB>
__device__ __forceinline__ void
moeGradWgmma(float (&d)[128], unsigned long long da, unsigned long long db,
             int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%"
      "20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%"
      "38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%"
      "56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%"
      "74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%"
      "92,%93,%94,%95,%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%"
      "108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%"
      "122,%123,%124,%125,%126,%127"
      "}, %128, %129, p, 1, 1, %131, %132;\n}\n"
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
      : "l"(da), "l"(db), "r"(accumulate), "n"(TA), "n"(TB));
}
#endif

// ---- sm_90a: the dh/dw2 and dx/dw13 GEMM pairs on wgmma -------------------
// moeGradWgPair<W, M>: one persistent, warp-specialised launch (producer
// warpgroup + 2 consumer warpgroups, moeWgmmaThreads, moeWgmmaSmemBytes, the
// forward's 4-stage ring and mbarrier protocol) runs the work items of the
// weight-gradient GEMM W (first) and of the slot-M GEMM M; item i of the
// launch is taken by CTA i % gridDim.x. A work item is a 128 (M) × 256 (N)
// output tile, K in steps of 64; each consumer warpgroup multiplies 64 of the
// rows with m64n256k16.
// Stage layout (128-byte swizzle, chunk c of a 128-byte row r at c ^ (r % 8)):
//  - K-major A (the slot-M GEMMs: dy gathered through perm_slot, or dac):
//    128 rows of 64 k, as the forward;
//  - MN-major A (the weight gradients, A(m, k) = dy[token of slot k][m] or
//    dac[slot k][m]): two [64 k][64 m] blocks of 8 KiB (one per consumer);
//  - B, always MN-major (w2 [h][i], w1/w3 [i][h], hb [slot][i], x [token][h]
//    are all stored with N contiguous): four [64 k][64 n] blocks of 8 KiB.
// wgmma reads MN-major operands with the transpose immediates and a
// descriptor whose leading offset (LBO) is the step between 64-wide MN
// blocks (8 KiB) and whose stride offset (SBO) the step between groups of 8 k
// rows (1 KiB); a k16 step advances 16 rows (2 KiB). The weight-gradient
// items reduce over an expert's slots (K = count, possibly 0: zeros).
// Needs H and I multiples of 8 (16-byte chunks never straddle a limit).
#if defined(MM_MOE_WGMMA)
__device__ __forceinline__ unsigned long long moeGradDescMN(unsigned addr) {
  return static_cast<unsigned long long>((addr & 0x3FFFF) >> 4) |
         (512ull << 16) | (64ull << 32) | (1ull << 62);
}
#endif

/// Where a work item of GEMM OP lies (decoded the same by all warpgroups).
struct WgItem {
  int e;
  long long r0, r1; // slot-M: permuted rows [r0, r1); weight gradient: m0, -
  long long n0, K, s0;
};

template <int OP>
__device__ __forceinline__ void
moeGradWgLocate(const MoeGradArgs &p, const int *tilesS, const int *offsS,
                int w, WgItem &it) {
  constexpr int BM = 128, BN = 256;
  const long long H = p.hidden, I = p.inter;
  if (OP == kDh || OP == kDx) {
    const long long N = OP == kDh ? I : H;
    const int NT = static_cast<int>((N + BN - 1) / BN);
    const int mt = w / NT;
    int e = 0;
    while (mt >= tilesS[e + 1])
      ++e;
    it.e = e;
    it.r0 = offsS[e] + static_cast<long long>(mt - tilesS[e]) * BM;
    it.r1 = it.r0 + BM < offsS[e + 1] ? it.r0 + BM : offsS[e + 1];
    it.n0 = static_cast<long long>(w % NT) * BN;
    it.K = OP == kDh ? H : 2 * I;
    it.s0 = 0;
  } else {
    const long long M = OP == kDw2 ? H : 2 * I, N = OP == kDw2 ? I : H;
    const int MT = static_cast<int>((M + BM - 1) / BM),
              NT = static_cast<int>((N + BN - 1) / BN);
    it.e = w / (MT * NT);
    const int rem = w % (MT * NT);
    it.r0 = static_cast<long long>(rem / NT) * BM;
    it.r1 = M;
    it.n0 = static_cast<long long>(rem % NT) * BN;
    it.s0 = offsS[it.e];
    it.K = offsS[it.e + 1] - offsS[it.e];
  }
}

/// Producer: the k-tiles of one item into the ring (g: k-tiles staged so far).
template <int OP>
__device__ __forceinline__ void
moeGradWgProduce(const MoeGradArgs &p, const WgItem &it, unsigned smem0,
                 unsigned long long *fullBar, unsigned long long *emptyBar,
                 int *gIdx, long long &g) {
#if defined(MM_MOE_WGMMA)
  constexpr int BK = 64, S = moeWgmmaStages();
  constexpr int A_BYTES = 128 * BK * 2, STAGE_BYTES = (128 + 256) * BK * 2;
  constexpr bool A_MN = OP == kDw2 || OP == kDw13;
  const long long H = p.hidden, I = p.inter, K = it.K;
  const int KK = static_cast<int>(p.top_k);
  const int tid = threadIdx.x;
  const unsigned short *x = cptr<unsigned short>(p.x),
                       *dy = cptr<unsigned short>(p.dy),
                       *hb = cptr<unsigned short>(p.hb),
                       *dac = cptr<unsigned short>(p.dac);
  const int *perm = cptr<int>(p.perm_slot);
  const unsigned short *w1 = cptr<unsigned short>(p.w1) + it.e * I * H,
                       *w3 = cptr<unsigned short>(p.w3) + it.e * I * H,
                       *w2 = cptr<unsigned short>(p.w2) + it.e * H * I;
  // K-major A (slot-M): rows rs + 16 j, chunk c (as the forward)
  const int c = tid & 7, rs = tid >> 3;
  // the A rows (dh: tokens of dy, dx: slots of dac), -1 past the group
  int aRow[8];
  if (!A_MN) {
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const long long r = it.r0 + rs + 16 * j;
      aRow[j] = r >= it.r1  ? -1
                : OP == kDh ? perm[r] / KK
                            : static_cast<int>(r);
    }
  }
  // MN-major A: k rows (tid >> 4) + 8 j, 16-byte column cc = tid % 16;
  // MN-major B: k rows (tid >> 5) + 4 j, column cc = tid % 32.
  const int acc16 = tid & 15, akr = tid >> 4, bcc = tid & 31, bkr = tid >> 5;
  const long long aM = it.r0 + acc16 * 8, bN = it.n0 + bcc * 8;
  const bool aColIn = aM < (OP == kDw2 ? H : 2 * I);
  const bool bColIn = bN < (OP == kDh || OP == kDw2 ? I : H);
  // The gathered rows (dw2: A's dy, dw13: B's x): thread t < 64 loads the
  // token of k row t one k-tile ahead (nx) and publishes it in gIdx[slot]
  // (a barrier of the producer warpgroup), so the copies never wait on
  // perm_slot and the rows cost one register.
  constexpr bool GATHER = OP == kDw2 || OP == kDw13;
  auto tokenOf = [&](long long k) {
    return tid < 64 && k < K ? perm[it.s0 + k] / KK : 0;
  };
  int nx = GATHER ? tokenOf(tid) : 0;
  const int KT = static_cast<int>((K + BK - 1) / BK);
  for (int kt = 0; kt < KT; ++kt, ++g) {
    const long long k0 = static_cast<long long>(kt) * BK;
    const int slot = static_cast<int>(g % S);
    const int *cur = gIdx + slot * 64;
    if (GATHER) {
      if (tid < 64)
        gIdx[slot * 64 + tid] = nx;
      asm volatile("bar.sync 1, 128;\n" ::: "memory");
      nx = tokenOf(k0 + BK + tid);
    }
    if (g >= S)
      mbarWait(sharedAddr(&emptyBar[slot]),
               static_cast<unsigned>(((g / S) & 1) ^ 1));
    const unsigned base = smem0 + static_cast<unsigned>(slot * STAGE_BYTES);
    if (!A_MN) {
      const bool kIn = k0 + c * 8 < K;
      const unsigned short *a0 = OP == kDh ? dy : dac;
      const long long ld = OP == kDh ? H : 2 * I;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const bool in = aRow[j] >= 0 && kIn;
        cpAsync16(base + (rs + 16 * j) * 128 + ((c ^ (rs & 7)) << 4),
                  in ? a0 + aRow[j] * ld + k0 + c * 8 : x, in);
      }
    } else {
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int kr = akr + 8 * j; // kr % 8 == akr
        const long long k = k0 + kr;
        const bool in = aColIn && k < K;
        const unsigned short *src =
            !in          ? x
            : OP == kDw2 ? dy + static_cast<long long>(cur[kr]) * H + aM
                         : dac + (it.s0 + k) * 2 * I + aM;
        cpAsync16(base + (acc16 >> 3) * 8192 + kr * 128 +
                      (((acc16 & 7) ^ akr) << 4),
                  src, in);
      }
    }
#pragma unroll 4
    for (int j = 0; j < 16; ++j) {
      const int kr = bkr + 4 * j;
      const long long k = k0 + kr;
      const bool in = bColIn && k < K;
      const unsigned short *src =
          !in          ? x
          : OP == kDh  ? w2 + k * I + bN
          : OP == kDx  ? (k < I ? w1 + k * H : w3 + (k - I) * H) + bN
          : OP == kDw2 ? hb + (it.s0 + k) * I + bN
                       : x + static_cast<long long>(cur[kr]) * H + bN;
      cpAsync16(base + A_BYTES + (bcc >> 3) * 8192 + kr * 128 +
                    (((bcc & 7) ^ (kr & 7)) << 4),
                src, in);
    }
    mbarArriveCpAsync(sharedAddr(&fullBar[slot]));
  }
#else
  (void)p, (void)it, (void)smem0, (void)fullBar, (void)emptyBar, (void)gIdx,
      (void)g;
#endif
}

/// Consumer warpgroup cw: multiplies one item, then its epilogue.
template <int OP>
__device__ __forceinline__ void
moeGradWgConsume(const MoeGradArgs &p, const int *tilesS, const int *offsS,
                 int wi, unsigned smem0, unsigned long long *fullBar,
                 unsigned long long *emptyBar, long long &g, float (&acc)[128],
                 int cw) {
#if defined(MM_MOE_WGMMA)
  constexpr int BK = 64, S = moeWgmmaStages();
  constexpr int A_BYTES = 128 * BK * 2, STAGE_BYTES = (128 + 256) * BK * 2;
  constexpr bool A_MN = OP == kDw2 || OP == kDw13;
  const long long H = p.hidden, I = p.inter;
  const int w = (threadIdx.x >> 5) & 3, l = threadIdx.x & 31;
  // K of the item (the rest of it is decoded after the main loop, so only
  // the accumulators live through it)
  const long long K0 = OP == kDh ? H : OP == kDx ? 2 * I : 0;
  int KT;
  if (OP == kDh || OP == kDx) {
    KT = static_cast<int>((K0 + BK - 1) / BK);
  } else {
    const long long M = OP == kDw2 ? H : 2 * I, N = OP == kDw2 ? I : H;
    const int e = wi / static_cast<int>(((M + 127) / 128) * ((N + 255) / 256));
    KT = (offsS[e + 1] - offsS[e] + BK - 1) / BK;
  }
  for (int kt = 0; kt < KT; ++kt, ++g) {
    const int slot = static_cast<int>(g % S);
    mbarWait(sharedAddr(&fullBar[slot]), static_cast<unsigned>((g / S) & 1));
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    const unsigned st = smem0 + static_cast<unsigned>(slot * STAGE_BYTES);
    const unsigned a = st + (A_MN ? cw * 8192 : cw * (64 * 128));
    const unsigned b = st + A_BYTES;
    fenceRegs(acc);
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk)
      moeGradWgmma<A_MN ? 1 : 0, 1>(
          acc, A_MN ? moeGradDescMN(a + kk * 2048) : wgmmaDesc(a + kk * 32),
          moeGradDescMN(b + kk * 2048), kt != 0 || kk != 0);
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");
    if (kt != 0 && l == 0)
      mbarArrive(sharedAddr(&emptyBar[(g - 1) % S]));
  }
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
  fenceRegs(acc);
  if (KT > 0) {
    if (l == 0)
      mbarArrive(sharedAddr(&emptyBar[(g - 1) % S]));
  }
  // an expert without slots (KT = 0): zero weight gradients (selected in the
  // epilogue; zeroing acc here would make ptxas spill the accumulators)
  const bool none = KT == 0;
  WgItem it;
  moeGradWgLocate<OP>(p, tilesS, offsS, wi, it);
  // acc[4 j + q]: row 16 w + l / 4 + 8 (q / 2) of the warpgroup's 64, column
  // 8 j + 2 (l % 4) + q % 2 of the item's 256.
  const long long rBase = it.r0 + cw * 64 + w * 16 + (l >> 2);
  const long long cBase = it.n0 + 2 * (l & 3);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const long long r = rBase + 8 * h;
    if (OP == kDh) {
      const bool rIn = r < it.r1;
      float dot = 0.f;
      if (rIn) {
        const float ws = moeGradSlotWeight(p, r);
        const float *acf = cptr<float>(p.acf) + r * 2 * I;
        unsigned *dac = reinterpret_cast<unsigned *>(
            mptr<unsigned short>(p.dac) + r * 2 * I);
#pragma unroll
        for (int j = 0; j < 32; ++j) {
          const long long n = cBase + 8 * j;
          if (n >= I)
            continue;
          const float2 a2 = *reinterpret_cast<const float2 *>(acf + n);
          const float2 c2 = *reinterpret_cast<const float2 *>(acf + I + n);
          const float av[2] = {a2.x, a2.y}, cv[2] = {c2.x, c2.y};
          float da[2], dc[2];
#pragma unroll
          for (int q = 0; q < 2; ++q) {
            const float v = acc[4 * j + 2 * h + q];
            const float sg = sigmoidF(av[q]);
            dot = fmaf(av[q] * sg * cv[q], v, dot);
            const float dh = ws * v;
            da[q] = dh * cv[q] * sg * (1.f + av[q] * (1.f - sg));
            dc[q] = dh * av[q] * sg;
          }
          dac[n / 2] = packBf16(da[0], da[1]);
          dac[(I + n) / 2] = packBf16(dc[0], dc[1]);
        }
      }
      dot += __shfl_xor_sync(0xffffffffu, dot, 1);
      dot += __shfl_xor_sync(0xffffffffu, dot, 2);
      if (rIn && (l & 3) == 0)
        atomicAdd(mptr<float>(p.dot) + r, dot);
    } else if (OP == kDx) {
      if (r >= it.r1)
        continue;
      unsigned *dxs =
          reinterpret_cast<unsigned *>(mptr<unsigned short>(p.dxs) + r * H);
#pragma unroll
      for (int j = 0; j < 32; ++j) {
        const long long n = cBase + 8 * j;
        if (n < H)
          dxs[n / 2] = packBf16(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]);
      }
    } else {
      const long long M = OP == kDw2 ? H : 2 * I, N = OP == kDw2 ? I : H;
      if (r >= M)
        continue;
      float *out = OP == kDw2 ? mptr<float>(p.dw2) + (it.e * H + r) * I
                   : r < I    ? mptr<float>(p.dw1) + (it.e * I + r) * H
                              : mptr<float>(p.dw3) + (it.e * I + r - I) * H;
#pragma unroll
      for (int j = 0; j < 32; ++j) {
        const long long n = cBase + 8 * j;
        if (n < N)
          *reinterpret_cast<float2 *>(out + n) =
              none ? make_float2(0.f, 0.f)
                   : make_float2(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]);
      }
    }
  }
#else
  (void)p, (void)it, (void)smem0, (void)fullBar, (void)emptyBar, (void)g,
      (void)acc, (void)cw;
#endif
}

/// Work items of a GEMM pair: W's (all experts) then M's (over the actual
/// M-tiles, tiles = tile_offsets[E]).
template <int W>
__device__ __host__ __forceinline__ long long
moeGradWgItemsW(long long H, long long I, long long E) {
  const long long M = W == kDw2 ? H : 2 * I, N = W == kDw2 ? I : H;
  return E * ((M + 127) / 128) * ((N + 255) / 256);
}

template <int W, int M> __device__ void moeGradWgPair(const MoeGradArgs &p) {
#if defined(MM_MOE_WGMMA)
  constexpr int S = moeWgmmaStages();
  extern __shared__ unsigned char moeSmemRaw[];
  __shared__ int tilesS[moeMaxExperts() + 1], offsS[moeMaxExperts() + 1];
  __shared__ __align__(8) unsigned long long fullBar[S], emptyBar[S];
  __shared__ int gIdx[S * 64]; // gathered rows of the staged k-tiles
  const unsigned smem0 = (sharedAddr(moeSmemRaw) + 1023u) & ~1023u;
  const int E = static_cast<int>(p.experts);
  for (int i = threadIdx.x; i <= E; i += blockDim.x) {
    tilesS[i] = cptr<int>(p.tile_offsets)[i];
    offsS[i] = cptr<int>(p.offsets)[i];
  }
  if (threadIdx.x == 0)
    for (int s = 0; s < S; ++s) {
      mbarInit(sharedAddr(&fullBar[s]), 128);
      mbarInit(sharedAddr(&emptyBar[s]), 8);
    }
  __syncthreads();
  const long long H = p.hidden, I = p.inter;
  const int nW = static_cast<int>(moeGradWgItemsW<W>(H, I, p.experts));
  const long long NM = M == kDh ? I : H;
  const int items = nW + tilesS[E] * static_cast<int>((NM + 255) / 256);
  const int wg = threadIdx.x >> 7;
  long long g = 0;
  if (wg == 0) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 104;\n" ::: "memory");
    for (int i = blockIdx.x; i < items; i += gridDim.x) {
      WgItem it;
      if (i < nW) {
        moeGradWgLocate<W>(p, tilesS, offsS, i, it);
        moeGradWgProduce<W>(p, it, smem0, fullBar, emptyBar, gIdx, g);
      } else {
        moeGradWgLocate<M>(p, tilesS, offsS, i - nW, it);
        moeGradWgProduce<M>(p, it, smem0, fullBar, emptyBar, gIdx, g);
      }
    }
    asm volatile("cp.async.wait_all;\n" ::: "memory");
    return;
  }
  asm volatile("setmaxnreg.inc.sync.aligned.u32 200;\n" ::: "memory");
  float acc[128];
#pragma unroll
  for (int i = 0; i < 128; ++i)
    acc[i] = 0.f;
  for (int i = blockIdx.x; i < items; i += gridDim.x) {
    if (i < nW)
      moeGradWgConsume<W>(p, tilesS, offsS, i, smem0, fullBar, emptyBar, g, acc,
                          wg - 1);
    else
      moeGradWgConsume<M>(p, tilesS, offsS, i - nW, smem0, fullBar, emptyBar, g,
                          acc, wg - 1);
  }
#else
  (void)p;
#endif
}

// ---- per-token phases -------------------------------------------------------
/// _dispatch: the forward's dispatch, then dot[s] = 0 (summed into by _dh).
__device__ void moeGradDispatch(const MoeGradArgs &p) {
  moeDispatch<moeGradTile(), 1024>(moeGradFwdArgs(p));
  for (long long s = threadIdx.x; s < p.rows * p.top_k; s += blockDim.x)
    mptr<float>(p.dot)[s] = 0.f;
}

/// One warp per token: router backward (z) and dx.
template <typename T> __device__ void moeGradRouter(const MoeGradArgs &p) {
  __shared__ float pS[8][moeMaxExperts()], dpS[8][moeMaxExperts()];
  __shared__ int posS[8][16];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const long long t = static_cast<long long>(blockIdx.x) * 8 + warp;
  if (t >= p.rows)
    return;
  const long long H = p.hidden;
  const int E = static_cast<int>(p.experts), K = static_cast<int>(p.top_k);
  const T *x = cptr<T>(p.x) + t * H, *router = cptr<T>(p.router);
  float *pr = pS[warp], *dp = dpS[warp];
  // bf16, H ≤ 1024 and E ≤ 8 (the common case): x's row and each lane's
  // pieces of all rows it reads are loaded up front, so the latencies overlap
  constexpr int RC = 4; // 16-byte chunks of a row per lane (H ≤ 1024)
  const bool fast = sizeof(T) == 2 && H % 8 == 0 && H <= 256 * RC && E <= 8;
  uint4 xv[RC];
  if (fast) {
#pragma unroll
    for (int i = 0; i < RC; ++i) {
      const long long c = lane * 8 + 256 * i;
      xv[i] = c < H ? *reinterpret_cast<const uint4 *>(
                          reinterpret_cast<const unsigned short *>(x) + c)
                    : make_uint4(0u, 0u, 0u, 0u);
    }
  }
  // logits exactly as moeRoute computes them (the same per-lane sums)
  if (fast) {
    float sv[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      sv[e] = 0.f;
      if (e >= E)
        continue;
      const unsigned short *rs =
          reinterpret_cast<const unsigned short *>(router) + e * H;
      uint4 rv[RC];
#pragma unroll
      for (int i = 0; i < RC; ++i) {
        const long long c = lane * 8 + 256 * i;
        rv[i] = c < H ? *reinterpret_cast<const uint4 *>(rs + c)
                      : make_uint4(0u, 0u, 0u, 0u);
      }
#pragma unroll
      for (int i = 0; i < RC; ++i) {
        if (lane * 8 + 256 * i >= H)
          break;
        const unsigned xu[4] = {xv[i].x, xv[i].y, xv[i].z, xv[i].w},
                       ru[4] = {rv[i].x, rv[i].y, rv[i].z, rv[i].w};
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          sv[e] = fmaf(__uint_as_float(xu[q] << 16),
                       __uint_as_float(ru[q] << 16), sv[e]);
          sv[e] = fmaf(__uint_as_float(xu[q] & 0xffff0000u),
                       __uint_as_float(ru[q] & 0xffff0000u), sv[e]);
        }
      }
    }
#pragma unroll
    for (int e = 0; e < 8; ++e)
      sv[e] = warpSum(sv[e]);
    if (lane < E) {
#pragma unroll
      for (int e = 0; e < 8; ++e)
        if (e == lane)
          pr[e] = sv[e];
    }
  }
  for (int e = 0; e < (fast ? 0 : E); ++e) {
    float s = 0.f;
    if (sizeof(T) == 2 && H % 8 == 0) {
      const unsigned short *xs = reinterpret_cast<const unsigned short *>(x);
      const unsigned short *rs =
          reinterpret_cast<const unsigned short *>(router) + e * H;
      for (long long c = lane * 8; c < H; c += 256) {
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
      for (long long c = lane; c < H; c += 32)
        s = fmaf(ld(x, c), ld(router, e * H + c), s);
    }
    s = warpSum(s);
    if (lane == 0)
      pr[e] = s;
  }
  __syncwarp();
  float mx = -infinity();
  for (int e = lane; e < E; e += 32)
    mx = fmaxf(mx, pr[e]);
  mx = warpMax(mx);
  float sum = 0.f;
  for (int e = lane; e < E; e += 32)
    sum += expf(pr[e] - mx);
  sum = warpSum(sum);
  __syncwarp();
  for (int e = lane; e < E; e += 32) {
    pr[e] = expf(pr[e] - mx) / sum;
    dp[e] = 0.f;
  }
  __syncwarp();
  const int *topE = cptr<int>(p.topk_expert) + t * K;
  const int *spos = cptr<int>(p.slot_pos) + t * K;
  if (lane == 0) {
    float kept = 0.f, wdw = 0.f;
    for (int j = 0; j < K; ++j)
      kept += pr[topE[j]];
    for (int j = 0; j < K; ++j)
      wdw += cptr<float>(p.dot)[spos[j]] * (pr[topE[j]] / kept);
    for (int j = 0; j < K; ++j)
      dp[topE[j]] = (cptr<float>(p.dot)[spos[j]] - wdw) / kept;
  }
  __syncwarp();
  float pdp = 0.f;
  for (int e = lane; e < E; e += 32)
    pdp += pr[e] * dp[e];
  pdp = warpSum(pdp);
  __syncwarp();
  float *z = mptr<float>(p.z) + t * E;
  for (int e = lane; e < E; e += 32) {
    const float v = pr[e] * (dp[e] - pdp);
    dp[e] = v;
    z[e] = v;
  }
  if (lane < K && lane < 16)
    posS[warp][lane] = spos[lane];
  __syncwarp();
  const T *dxs = cptr<T>(p.dxs);
  T *dx = mptr<T>(p.dx) + t * H;
  if (fast) {
    // dx = Σ_j dxs[slot j] + Σ_e dp_e router[e]: all of a row's chunks at
    // once (independent loads), 8 outputs of each chunk a lane
    float s[RC][8];
#pragma unroll
    for (int i = 0; i < RC; ++i)
#pragma unroll
      for (int q = 0; q < 8; ++q)
        s[i][q] = 0.f;
    auto addRow = [&](const unsigned short *src, float f) {
      uint4 v[RC];
#pragma unroll
      for (int i = 0; i < RC; ++i) {
        const long long c = lane * 8 + 256 * i;
        v[i] = c < H ? *reinterpret_cast<const uint4 *>(src + c)
                     : make_uint4(0u, 0u, 0u, 0u);
      }
#pragma unroll
      for (int i = 0; i < RC; ++i) {
        const unsigned u[4] = {v[i].x, v[i].y, v[i].z, v[i].w};
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          s[i][2 * q] = fmaf(f, __uint_as_float(u[q] << 16), s[i][2 * q]);
          s[i][2 * q + 1] =
              fmaf(f, __uint_as_float(u[q] & 0xffff0000u), s[i][2 * q + 1]);
        }
      }
    };
    const unsigned short *dxsU = reinterpret_cast<const unsigned short *>(dxs),
                         *rU = reinterpret_cast<const unsigned short *>(router);
    for (int j = 0; j < K; ++j)
      addRow(dxsU +
                 static_cast<long long>(j < 16 ? posS[warp][j] : spos[j]) * H,
             1.f);
#pragma unroll
    for (int e = 0; e < 8; ++e)
      if (e < E)
        addRow(rU + e * H, dp[e]);
#pragma unroll
    for (int i = 0; i < RC; ++i) {
      const long long c = lane * 8 + 256 * i;
      if (c < H)
        *reinterpret_cast<uint4 *>(reinterpret_cast<unsigned short *>(dx) + c) =
            make_uint4(packBf16(s[i][0], s[i][1]), packBf16(s[i][2], s[i][3]),
                       packBf16(s[i][4], s[i][5]), packBf16(s[i][6], s[i][7]));
    }
    return;
  }
  if (sizeof(T) == 2 && H % 8 == 0) {
    for (long long c = lane * 8; c < H; c += 256) {
      float s[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      auto add = [&](const T *src, float f) {
        const uint4 v = *reinterpret_cast<const uint4 *>(src);
        const unsigned u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          s[2 * i] = fmaf(f, __uint_as_float(u[i] << 16), s[2 * i]);
          s[2 * i + 1] =
              fmaf(f, __uint_as_float(u[i] & 0xffff0000u), s[2 * i + 1]);
        }
      };
      for (int j = 0; j < K; ++j)
        add(dxs + static_cast<long long>(j < 16 ? posS[warp][j] : spos[j]) * H +
                c,
            1.f);
      for (int e = 0; e < E; ++e)
        add(router + e * H + c, dp[e]);
      *reinterpret_cast<uint4 *>(reinterpret_cast<unsigned short *>(dx) + c) =
          make_uint4(packBf16(s[0], s[1]), packBf16(s[2], s[3]),
                     packBf16(s[4], s[5]), packBf16(s[6], s[7]));
    }
    return;
  }
  for (long long c = lane; c < H; c += 32) {
    float s = 0.f;
    for (int j = 0; j < K; ++j)
      s += ld(dxs, static_cast<long long>(spos[j]) * H + c);
    for (int e = 0; e < E; ++e)
      s = fmaf(dp[e], ld(router, e * H + c), s);
    st(dx, c, s);
  }
}

/// part[rs][e][c] = Σ_{t in split rs} z[t][e]·x[t][c]; one thread per column.
template <typename T> __device__ void moeGradDrouter(const MoeGradArgs &p) {
  const long long c = static_cast<long long>(blockIdx.x) * 256 + threadIdx.x;
  const long long H = p.hidden, E = p.experts, RS = p.rsplit;
  const long long per = (p.rows + RS - 1) / RS;
  const long long t0 = blockIdx.y * per,
                  t1 = t0 + per < p.rows ? t0 + per : p.rows;
  if (c >= H)
    return;
  const T *x = cptr<T>(p.x);
  const float *z = cptr<float>(p.z);
  float *part = mptr<float>(p.part) + blockIdx.y * E * H;
  for (long long e0 = 0; e0 < E; e0 += 8) {
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
#pragma unroll 8
    for (long long t = t0; t < t1; ++t) {
      const float xv = ld(x, t * H + c);
#pragma unroll
      for (int i = 0; i < 8; ++i)
        if (e0 + i < E)
          acc[i] = fmaf(z[t * E + e0 + i], xv, acc[i]);
    }
#pragma unroll
    for (int i = 0; i < 8; ++i)
      if (e0 + i < E)
        part[(e0 + i) * H + c] = acc[i];
  }
}

__device__ void moeGradDrouterSum(const MoeGradArgs &p) {
  const long long n = p.experts * p.hidden;
  const long long i = static_cast<long long>(blockIdx.x) * 256 + threadIdx.x;
  if (i >= n)
    return;
  float s = 0.f;
#pragma unroll 8
  for (long long r = 0; r < p.rsplit; ++r)
    s += cptr<float>(p.part)[r * n + i];
  mptr<float>(p.drouter)[i] = s;
}

} // namespace k
} // namespace mm

#define MM_MOE_GRAD_ENTRIES(prefix, T, D)                                      \
  extern "C" __global__ void __launch_bounds__(256)                            \
      prefix##_route(mm::k::MoeGradArgs a) {                                   \
    mm::k::moeRoute<T, 256>(mm::k::moeGradFwdArgs(a));                         \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(1024)                           \
      prefix##_dispatch(mm::k::MoeGradArgs a) {                                \
    mm::k::moeGradDispatch(a);                                                 \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(256, 2)                         \
      prefix##_gateup(mm::k::MoeGradArgs a) {                                  \
    if (!mm::k::moeGradUseWgmma<T>(a))                                         \
      mm::k::moeGradGemm<T, mm::k::kGateUp>(a, blockIdx.x, blockIdx.y, 0);     \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(384, 1)                         \
      prefix##_gateup_wg(mm::k::MoeGradArgs a) {                               \
    if (mm::k::moeGradUseWgmma<T>(a))                                          \
      mm::k::moeGradGateUpWgmma(a);                                            \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(256, 2)                         \
      prefix##_dh_dw2(mm::k::MoeGradArgs a) {                                  \
    if (!mm::k::moeGradDhWgmma() || !mm::k::moeGradUseWgmma<T>(a))             \
      mm::k::moeGradPair<T, mm::k::kDw2, mm::k::kDh>(a);                       \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(384, 1)                         \
      prefix##_dh_dw2_wg(mm::k::MoeGradArgs a) {                               \
    if (mm::k::moeGradDhWgmma() && mm::k::moeGradUseWgmma<T>(a))               \
      mm::k::moeGradWgPair<mm::k::kDw2, mm::k::kDh>(a);                        \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(256, 2)                         \
      prefix##_dw13_dx(mm::k::MoeGradArgs a) {                                 \
    if (!mm::k::moeGradUseWgmma<T>(a))                                         \
      mm::k::moeGradPair<T, mm::k::kDw13, mm::k::kDx>(a);                      \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(384, 1)                         \
      prefix##_dw13_dx_wg(mm::k::MoeGradArgs a) {                              \
    if (mm::k::moeGradUseWgmma<T>(a))                                          \
      mm::k::moeGradWgPair<mm::k::kDw13, mm::k::kDx>(a);                       \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(256)                            \
      prefix##_router(mm::k::MoeGradArgs a) {                                  \
    mm::k::moeGradRouter<T>(a);                                                \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(256)                            \
      prefix##_drouter(mm::k::MoeGradArgs a) {                                 \
    mm::k::moeGradDrouter<T>(a);                                               \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(256)                            \
      prefix##_drouter_sum(mm::k::MoeGradArgs a) {                             \
    mm::k::moeGradDrouterSum(a);                                               \
  }
