// moe_grad (docs/kernels.md): backward of the top-k routed SwiGLU MoE block,
// the forward recomputed, as twelve launches on one stream (moeGradPlan):
//   _route     moeRoute of kernels/moe.cuh (the forward's fp32 router, so the
//              selection is the forward's): topk_expert, topk_weight.
//   _dispatch  moeDispatch (BM = 128): the slots grouped by expert, offsets
//              and 128-row tile_offsets, perm_slot / slot_pos.
//   _permute   one block per permuted slot s (token t, weight w):
//              xs[s] = x[t], dyw[s] = w·dy[t], dot[s] = 0.
// Grouped GEMMs (C = A·Bᵀ, C[m][n] = Σ_k A(m,k) B(n,k)); "slot-M" GEMMs run
// over M-tiles of the expert groups (grid.x = tile, as the forward), the
// weight-gradient GEMMs reduce over an expert's slots (K = its slot count,
// grid.z = expert, each CTA owns its f32 output tile: plain stores, no
// atomics, zeros for an expert without slots):
//   _gateup  [a | c] = xs·[w1_e | w3_e]ᵀ  (M slots, N I, K H) -> ac, and
//            hb = silu(a)·c. The B tile is 64 rows of w1 then the same 64 of
//            w3, so a thread holds gate and up of the same outputs.
//   _ydot    y = hb·w2_eᵀ (N H, K I), never stored: dot[s] += Σ_n y·dy[t].
//   _dh      dh = dyw·w2_e (N I, K H; B read transposed), epilogue in place
//            on ac: da = dh·c·σ(a)(1 + a(1 − σ(a))), dc = dh·a·σ(a).
//   _dw2     dw2_e = dywᵀ·hb over the expert's slots (M H, N I).
//   _dw13    [dw1_e; dw3_e] = [da | dc]ᵀ·xs (M 2I, N H): rows < I go to dw1.
//   _dx      dxs = [da | dc]·[w1_e; w3_e] (N H, K 2I; B transposed).
// Then per token (one warp): _router recomputes the logits and softmax p,
// dw_j = dot[slot j], dp_j = (dw_j − Σ_k w_k dw_k)/P on the top-k,
// z = p(dp − Σ p·dp) -> z[t], and dx[t] = Σ_j dxs[slot j] + routerᵀz;
// _drouter sums z[t]·x[t] over RS row splits into `part`, _drouter_sum adds
// the splits into drouter.
//
// GEMM engines, one tiling (128×128 outputs, 256 threads) so one plan serves
// both element types: bf16 with H and I multiples of 8 runs on the tensor
// cores: mma.sync m16n8k16 (fp32 accumulators), 8 warps as 2 (M) × 4 (N),
// each a 64×32 tile; tiles of BK = 32 staged by 16-byte cp.async in a
// 4-stage ring; operands stored K-contiguous ([m][k], rows of 32+8 bf16) are
// read with ldmatrix, operands stored M/N-contiguous ([k][m], rows of 128+8)
// with ldmatrix.trans (the 16-byte padding makes both conflict-free). Other
// shapes and f32: a SIMT engine on the same tiles (8×8 outputs per thread,
// BK = 8). Operand addressing is one descriptor (GOp) per operand: stored
// row r of a tile (an M/N index for [m][k] operands, the K index for [k][m]
// ones) is base0 + r·ld, or base1 + (r − split)·ld past `split` (w1 then w3),
// zero past rowLim rows or colLim columns.
#pragma once

#include "kernels/moe.cuh"
#include "kernels/moe_grad.h"

namespace mm {
namespace k {

__device__ __forceinline__ MoeArgs moeGradFwdArgs(const MoeGradArgs &a) {
  MoeArgs m;
  m.x = a.x;
  m.router = a.router;
  m.w1 = a.w1;
  m.w2 = a.w2;
  m.w3 = a.w3;
  m.out = 0;
  m.topk_expert = a.topk_expert;
  m.topk_weight = a.topk_weight;
  m.slot_pos = a.slot_pos;
  m.perm_slot = a.perm_slot;
  m.offsets = a.offsets;
  m.tile_offsets = a.tile_offsets;
  m.h = 0;
  m.y = 0;
  m.rows = a.rows;
  m.hidden = a.hidden;
  m.experts = a.experts;
  m.inter = a.inter;
  m.top_k = a.top_k;
  return m;
}

/// One GEMM operand as stored rows (see the file comment).
template <typename T> struct GOp {
  const T *b0, *b1;
  long long ld, split, rowLim, colLim;
  __device__ bool ok(long long r, long long c) const {
    const long long rr = r < split ? r : r - split;
    return rr < rowLim && c < colLim;
  }
  __device__ const T *at(long long r, long long c) const {
    return r < split ? b0 + r * ld + c : b1 + (r - split) * ld + c;
  }
  __device__ float get(long long r, long long c) const {
    return ok(r, c) ? ld_(at(r, c)) : 0.f;
  }
  __device__ static float ld_(const T *p) { return toF32(*p); }
};

/// GOp::split of an operand that is one array.
constexpr long long kMoeGradNoSplit = 1ll << 62;

enum MoeGradOp { kGateUp, kYDot, kDh, kDw2, kDw13, kDx };

/// The problem of one CTA: operands, K, and where its tile lies.
template <typename T> struct GTile {
  GOp<T> A, B;
  long long K;
  int e;
  long long r0, r1; // slot-M GEMMs: permuted rows [r0, r1); else m0 in r0
  long long n0;     // first output column (gate/up: of I)
};

template <int OP> struct OpTraits {
  static constexpr bool A_KM = OP == kDw2 || OP == kDw13;    // A stored [k][m]
  static constexpr bool B_KN = OP != kGateUp && OP != kYDot; // B stored [k][n]
  static constexpr bool SPLIT = OP == kGateUp;
  static constexpr bool SLOT_M = OP != kDw2 && OP != kDw13;
};

template <typename T, int OP>
__device__ bool moeGradSetup(const MoeGradArgs &p, GTile<T> &t) {
  constexpr int TB = moeGradTile();
  const long long H = p.hidden, I = p.inter;
  constexpr long long big = kMoeGradNoSplit;
  const int E = static_cast<int>(p.experts);
  const int *tiles = cptr<int>(p.tile_offsets), *offs = cptr<int>(p.offsets);
  if (OpTraits<OP>::SLOT_M) {
    const int tile = blockIdx.x;
    if (tile >= tiles[E])
      return false;
    int e = 0;
    while (tile >= tiles[e + 1])
      ++e;
    t.e = e;
    t.r0 = offs[e] + static_cast<long long>(tile - tiles[e]) * TB;
    t.r1 = t.r0 + TB < offs[e + 1] ? t.r0 + TB : offs[e + 1];
  } else {
    t.e = blockIdx.z;
    t.r0 = static_cast<long long>(blockIdx.x) * TB;
    t.r1 = offs[t.e]; // first slot of the expert
  }
  const int e = t.e;
  const long long rows = t.r1 - t.r0;
  const T *xs = cptr<T>(p.xs), *dyw = cptr<T>(p.dyw), *hb = cptr<T>(p.hb),
          *ac = cptr<T>(p.ac);
  const T *w1 = cptr<T>(p.w1) + e * I * H, *w3 = cptr<T>(p.w3) + e * I * H,
          *w2 = cptr<T>(p.w2) + e * H * I;
  if (OP == kGateUp) {
    t.n0 = static_cast<long long>(blockIdx.y) * (TB / 2);
    t.K = H;
    t.A = {xs + t.r0 * H, xs, H, big, rows, H};
    t.B = {w1 + t.n0 * H, w3 + t.n0 * H, H, TB / 2, I - t.n0, H};
  } else if (OP == kYDot) {
    t.n0 = static_cast<long long>(blockIdx.y) * TB;
    t.K = I;
    t.A = {hb + t.r0 * I, hb, I, big, rows, I};
    t.B = {w2 + t.n0 * I, w2, I, big, H - t.n0, I};
  } else if (OP == kDh) {
    t.n0 = static_cast<long long>(blockIdx.y) * TB;
    t.K = H;
    t.A = {dyw + t.r0 * H, dyw, H, big, rows, H};
    t.B = {w2 + t.n0, w2, I, big, H, I - t.n0};
  } else if (OP == kDx) {
    t.n0 = static_cast<long long>(blockIdx.y) * TB;
    t.K = 2 * I;
    t.A = {ac + t.r0 * 2 * I, ac, 2 * I, big, rows, 2 * I};
    t.B = {w1 + t.n0, w3 + t.n0, H, I, I, H - t.n0};
  } else {
    const long long s0 = offs[e], cnt = offs[e + 1] - offs[e];
    t.n0 = static_cast<long long>(blockIdx.y) * TB;
    t.K = cnt;
    if (OP == kDw2) {
      t.A = {dyw + s0 * H + t.r0, dyw, H, big, cnt, H - t.r0};
      t.B = {hb + s0 * I + t.n0, hb, I, big, cnt, I - t.n0};
    } else {
      t.A = {ac + s0 * 2 * I + t.r0, ac, 2 * I, big, cnt, 2 * I - t.r0};
      t.B = {xs + s0 * H + t.n0, xs, H, big, cnt, H - t.n0};
    }
  }
  return true;
}

/// Epilogue of one output (m, n local to the tile; v the product, u the up
/// product of the gate/up GEMM). _ydot is handled by the engines (a row sum).
template <typename T, int OP>
__device__ __forceinline__ void moeGradStore(const MoeGradArgs &p,
                                             const GTile<T> &t, int m, int n,
                                             float v, float u) {
  const long long H = p.hidden, I = p.inter;
  if (OP == kGateUp) {
    const long long r = t.r0 + m, c = t.n0 + n;
    if (r >= t.r1 || c >= I)
      return;
    T *ac = mptr<T>(p.ac) + r * 2 * I;
    st(ac, c, v);
    st(ac, I + c, u);
    st(mptr<T>(p.hb), r * I + c, siluF(v) * u);
  } else if (OP == kDh) {
    const long long r = t.r0 + m, c = t.n0 + n;
    if (r >= t.r1 || c >= I)
      return;
    T *ac = mptr<T>(p.ac) + r * 2 * I;
    const float a = toF32(ac[c]), cu = toF32(ac[I + c]);
    const float sg = sigmoidF(a);
    st(ac, c, v * cu * sg * (1.f + a * (1.f - sg)));
    st(ac, I + c, v * a * sg);
  } else if (OP == kDx) {
    const long long r = t.r0 + m, c = t.n0 + n;
    if (r < t.r1 && c < H)
      st(mptr<T>(p.dxs), r * H + c, v);
  } else if (OP == kDw2) {
    const long long r = t.r0 + m, c = t.n0 + n;
    if (r < H && c < I)
      mptr<float>(p.dw2)[(t.e * H + r) * I + c] = v;
  } else if (OP == kDw13) {
    const long long r = t.r0 + m, c = t.n0 + n;
    if (r < 2 * I && c < H) {
      float *d = mptr<float>(r < I ? p.dw1 : p.dw3);
      d[(t.e * I + (r < I ? r : r - I)) * H + c] = v;
    }
  }
}

/// dy[t]·y of slot row m (local), partial over this thread's columns.
template <typename T>
__device__ __forceinline__ float moeGradDyAt(const MoeGradArgs &p,
                                             long long tok, long long c) {
  return c < p.hidden ? ld(cptr<T>(p.dy), tok * p.hidden + c) : 0.f;
}

// ---- SIMT engine (any T, any shape) ---------------------------------------
template <typename T, int OP>
__device__ void moeGradGemmSimt(const MoeGradArgs &p) {
  constexpr int TB = 128, BK = 8;
  using Tr = OpTraits<OP>;
  __shared__ float As[BK][TB], Bs[BK][TB];
  GTile<T> t;
  if (!moeGradSetup<T, OP>(p, t))
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
  if constexpr (OP == kYDot) {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const long long r = t.r0 + ty + 16 * i;
      if (r >= t.r1)
        continue;
      const long long tok = cptr<int>(p.perm_slot)[r] / p.top_k;
      float s = 0.f;
#pragma unroll
      for (int j = 0; j < 8; ++j)
        s += acc[i][j] * moeGradDyAt<T>(p, tok, t.n0 + tx + 16 * j);
      atomicAdd(mptr<float>(p.dot) + r, s);
    }
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        if (Tr::SPLIT) {
          if (j < 4)
            moeGradStore<T, OP>(p, t, ty + 16 * i, tx + 16 * j, acc[i][j],
                                acc[i][j + 4]);
        } else {
          moeGradStore<T, OP>(p, t, ty + 16 * i, tx + 16 * j, acc[i][j], 0.f);
        }
      }
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

template <int OP> __device__ void moeGradGemmTc(const MoeGradArgs &p) {
  using T = bf16;
  using Tr = OpTraits<OP>;
  constexpr int TB = 128, BK = 32, ST = moeGradStages();
  constexpr int LDK = BK + 8, LDT = TB + 8; // bf16 per stored row
  constexpr int TILE_BYTES = 10240;         // ≥ 128·40·2 and 32·136·2
  extern __shared__ __align__(16) unsigned char moeGradSmem[];
  GTile<T> t;
  if (!moeGradSetup<T, OP>(p, t))
    return;
  const unsigned sBase = sharedAddr(moeGradSmem);
  const int tid = threadIdx.x, warp = tid >> 5, l = tid & 31;
  const int wm = (warp >> 2) * 64, wn = warp & 3, g = l >> 2, tq = l & 3;
  const int KT = static_cast<int>((t.K + BK - 1) / BK);

  auto loadStage = [&](int slot, long long k0) {
    const unsigned aS = sBase + slot * 2 * TILE_BYTES, bS = aS + TILE_BYTES;
#pragma unroll
    for (int q = 0; q < 2; ++q) {
      const int idx = tid + 256 * q;
      if (Tr::A_KM) {
        const int r = idx >> 4, c = (idx & 15) * 8;
        const bool v = k0 + r < t.K && t.A.ok(k0 + r, c);
        cpAsync16(aS + (r * LDT + c) * 2, v ? t.A.at(k0 + r, c) : t.A.b0, v);
      } else {
        const int r = idx >> 2, c = (idx & 3) * 8;
        const bool v = t.A.ok(r, k0 + c);
        cpAsync16(aS + (r * LDK + c) * 2, v ? t.A.at(r, k0 + c) : t.A.b0, v);
      }
      if (Tr::B_KN) {
        const int r = idx >> 4, c = (idx & 15) * 8;
        const bool v = k0 + r < t.K && t.B.ok(k0 + r, c);
        cpAsync16(bS + (r * LDT + c) * 2, v ? t.B.at(k0 + r, c) : t.B.b0, v);
      } else {
        const int r = idx >> 2, c = (idx & 3) * 8;
        const bool v = t.B.ok(r, k0 + c);
        cpAsync16(bS + (r * LDK + c) * 2, v ? t.B.at(r, k0 + c) : t.B.b0, v);
      }
    }
  };

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

  // acc[i][j][q]: row wm + 16i + g + 8(q/2), column col(j) + 2tq + q%2.
  auto colOf = [&](int j) {
    return Tr::SPLIT ? (j >> 1) * 64 + wn * 16 + (j & 1) * 8 : wn * 32 + j * 8;
  };
  if constexpr (OP == kYDot) {
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int m = wm + 16 * i + g + 8 * h;
        const long long r = t.r0 + m;
        const bool in = r < t.r1;
        const long long tok = in ? cptr<int>(p.perm_slot)[r] / p.top_k : 0;
        float s = 0.f;
        if (in)
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const long long c = t.n0 + colOf(j) + 2 * tq;
            if (c < p.hidden) {
              const unsigned dv = *reinterpret_cast<const unsigned *>(
                  cptr<unsigned short>(p.dy) + tok * p.hidden + c);
              s += acc[i][j][2 * h] * __uint_as_float(dv << 16) +
                   acc[i][j][2 * h + 1] * __uint_as_float(dv & 0xffff0000u);
            }
          }
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        s += __shfl_xor_sync(0xffffffffu, s, 2);
        if (in && tq == 0)
          atomicAdd(mptr<float>(p.dot) + r, s);
      }
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < (Tr::SPLIT ? 2 : 4); ++j)
#pragma unroll
        for (int q = 0; q < 4; ++q)
          moeGradStore<T, OP>(p, t, wm + 16 * i + g + 8 * (q >> 1),
                              colOf(j) + 2 * tq + (q & 1), acc[i][j][q],
                              Tr::SPLIT ? acc[i][j + 2][q] : 0.f);
  }
}

template <typename T, int OP>
__device__ void moeGradGemm(const MoeGradArgs &p) {
  if constexpr (sizeof(T) == 2) {
    if (p.hidden % 8 == 0 && p.inter % 8 == 0) {
      moeGradGemmTc<OP>(p);
      return;
    }
  }
  moeGradGemmSimt<T, OP>(p);
}

// ---- per-slot and per-token phases -----------------------------------------
template <typename T> __device__ void moeGradPermute(const MoeGradArgs &p) {
  const long long pos = blockIdx.x, H = p.hidden;
  if (pos >= p.rows * p.top_k)
    return;
  const int slot = cptr<int>(p.perm_slot)[pos];
  const long long tok = slot / p.top_k;
  const float w = cptr<float>(p.topk_weight)[slot];
  if (threadIdx.x == 0)
    mptr<float>(p.dot)[pos] = 0.f;
  const T *x = cptr<T>(p.x) + tok * H, *dy = cptr<T>(p.dy) + tok * H;
  T *xs = mptr<T>(p.xs) + pos * H, *dyw = mptr<T>(p.dyw) + pos * H;
  if (sizeof(T) == 2 && H % 8 == 0) {
    for (long long c = threadIdx.x * 8; c < H; c += blockDim.x * 8) {
      *reinterpret_cast<uint4 *>(xs + c) =
          *reinterpret_cast<const uint4 *>(x + c);
      const uint4 v = *reinterpret_cast<const uint4 *>(dy + c);
      const unsigned u[4] = {v.x, v.y, v.z, v.w};
      unsigned o[4];
#pragma unroll
      for (int i = 0; i < 4; ++i)
        o[i] = packBf16(w * __uint_as_float(u[i] << 16),
                        w * __uint_as_float(u[i] & 0xffff0000u));
      *reinterpret_cast<uint4 *>(dyw + c) = make_uint4(o[0], o[1], o[2], o[3]);
    }
    return;
  }
  for (long long c = threadIdx.x; c < H; c += blockDim.x) {
    xs[c] = x[c];
    st(dyw, c, w * ld(dy, c));
  }
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
  // logits exactly as moeRoute computes them
  for (int e = 0; e < E; ++e) {
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
    mm::k::moeDispatch<mm::k::moeGradTile(), 1024>(mm::k::moeGradFwdArgs(a));  \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(128)                            \
      prefix##_permute(mm::k::MoeGradArgs a) {                                 \
    mm::k::moeGradPermute<T>(a);                                               \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(256, 2)                         \
      prefix##_gateup(mm::k::MoeGradArgs a) {                                  \
    mm::k::moeGradGemm<T, mm::k::kGateUp>(a);                                  \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(256, 2)                         \
      prefix##_ydot(mm::k::MoeGradArgs a) {                                    \
    mm::k::moeGradGemm<T, mm::k::kYDot>(a);                                    \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(256, 2)                         \
      prefix##_dh(mm::k::MoeGradArgs a) {                                      \
    mm::k::moeGradGemm<T, mm::k::kDh>(a);                                      \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(256, 2)                         \
      prefix##_dw2(mm::k::MoeGradArgs a) {                                     \
    mm::k::moeGradGemm<T, mm::k::kDw2>(a);                                     \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(256, 2)                         \
      prefix##_dw13(mm::k::MoeGradArgs a) {                                    \
    mm::k::moeGradGemm<T, mm::k::kDw13>(a);                                    \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(256, 2)                         \
      prefix##_dx(mm::k::MoeGradArgs a) {                                      \
    mm::k::moeGradGemm<T, mm::k::kDx>(a);                                      \
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
