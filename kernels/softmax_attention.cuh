// softmax_attention (docs/kernels.md): causal softmax attention forward with GQA, in the
// FlashAttention-2 form: per query tile, walk the key/value tiles up to the diagonal keeping a
// running row max m and row sum l in fp32 (online softmax), rescaling the output accumulator by
// exp(m_old - m_new) at each tile; divide by l at the end. Query head h reads kv head
// h / (Hq/Hkv).
//
// Operands: q [B, T, Hq*D], k and v [B, T, Hkv*D], out [B, T, Hq*D], all T, row-major.
// Tiling: grid (ceil(T/BQ), Hq, B); shared memory (floats, rows padded by one word):
// Q [BQ][D+1], K and V [BK][D+1], P [BQ][BK+1], m, l, rescale [BQ] = attentionSmemFloats.
// f32: S = Q Kᵀ and O += P V run on TileMap register tiles in fp32 (O stays in registers across
// tiles); one warp per query row does the softmax bookkeeping.
// bf16: the tensor-core form (FlashAttention-2 on mma.sync.m16n8k16): THREADS = 2·BQ, each warp
// owns 16 query rows; Q fragments stay in registers, K [BK][D+8] and Vᵀ [D][BK+8] are staged in
// static shared memory (bf16, rows padded by 16 bytes), S and O are fp32 fragments in registers,
// P is rounded to bf16 and fed straight from the S fragments into P V. D ≤ 128.
// Keys past T or past the diagonal are -inf in both forms.
#pragma once

#include "kernels/tile_gemm.cuh"

namespace mm {
namespace k {

template <int D, int BQ, int BK, int THREADS>
__device__ void softmaxAttentionTensorCores(const SoftmaxAttentionArgs &p) {
  static_assert(THREADS == 2 * BQ && BQ % 16 == 0, "one warp per 16 query rows");
  static_assert(D % 16 == 0 && BK % 16 == 0 && D <= 128, "mma tiles; static shared memory");
  constexpr int LK = D + 8, LV = BK + 8;
  __shared__ __align__(16) unsigned short Ks[BK * LK];
  __shared__ __align__(16) unsigned short Vt[D * LV];

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const long long q0 = static_cast<long long>(blockIdx.x) * BQ;
  const long long h = blockIdx.y, b = blockIdx.z;
  const long long T_ = p.seq, H = p.heads, HKV = p.kv_heads;
  const long long kvh = h / (H / HKV);
  const long long rowQ = H * D, rowKV = HKV * D;
  const unsigned short *q = cptr<unsigned short>(p.q), *k = cptr<unsigned short>(p.k),
                       *v = cptr<unsigned short>(p.v);
  const float scale = static_cast<float>(p.scale);
  const long long rowA = q0 + warp * 16 + g, rowB = rowA + 8;

  auto ld32 = [](const unsigned short *ptr) { return *reinterpret_cast<const unsigned *>(ptr); };
  unsigned qa[D / 16][4];
#pragma unroll
  for (int kd = 0; kd < D / 16; ++kd) {
    const int c = kd * 16 + 2 * t;
    const unsigned short *pa = q + (b * T_ + rowA) * rowQ + h * D + c;
    const unsigned short *pb = q + (b * T_ + rowB) * rowQ + h * D + c;
    qa[kd][0] = rowA < T_ ? ld32(pa) : 0u;
    qa[kd][1] = rowB < T_ ? ld32(pb) : 0u;
    qa[kd][2] = rowA < T_ ? ld32(pa + 8) : 0u;
    qa[kd][3] = rowB < T_ ? ld32(pb + 8) : 0u;
  }
  float o[D / 8][4];
#pragma unroll
  for (int nd = 0; nd < D / 8; ++nd)
#pragma unroll
    for (int c = 0; c < 4; ++c)
      o[nd][c] = 0.f;
  float mA = -infinity(), mB = -infinity(), lA = 0.f, lB = 0.f;

  const long long kvEnd = q0 + BQ < T_ ? q0 + BQ : T_;
  for (long long k0 = 0; k0 < kvEnd; k0 += BK) {
    __syncthreads(); // the previous tile is done with K and Vᵀ
    for (int idx = threadIdx.x; idx < BK * (D / 8); idx += THREADS) {
      const int j = idx / (D / 8), d = (idx % (D / 8)) * 8;
      uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
      if (k0 + j < T_) {
        const long long off = (b * T_ + k0 + j) * rowKV + kvh * D + d;
        kv = *reinterpret_cast<const uint4 *>(k + off);
        vv = *reinterpret_cast<const uint4 *>(v + off);
      }
      *reinterpret_cast<uint4 *>(Ks + j * LK + d) = kv;
      const unsigned short *vs = reinterpret_cast<const unsigned short *>(&vv);
#pragma unroll
      for (int i = 0; i < 8; ++i)
        Vt[(d + i) * LV + j] = vs[i];
    }
    __syncthreads();

    float s[BK / 8][4];
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt) {
#pragma unroll
      for (int c = 0; c < 4; ++c)
        s[nt][c] = 0.f;
#pragma unroll
      for (int kd = 0; kd < D / 16; ++kd) {
        const unsigned short *base = Ks + (nt * 8 + g) * LK + kd * 16 + 2 * t;
        const unsigned bf[2] = {ld32(base), ld32(base + 8)};
        mmaBf16(s[nt], qa[kd], bf);
      }
    }
    float mxA = -infinity(), mxB = -infinity();
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const long long key = k0 + nt * 8 + 2 * t + (c & 1);
        const long long row = c < 2 ? rowA : rowB;
        s[nt][c] = key <= row && key < T_ ? s[nt][c] * scale : -infinity();
        if (c < 2)
          mxA = fmaxf(mxA, s[nt][c]);
        else
          mxB = fmaxf(mxB, s[nt][c]);
      }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, off));
      mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, off));
    }
    const float nA = fmaxf(mA, mxA), nB = fmaxf(mB, mxB);
    const float rA = mA == -infinity() ? 0.f : __expf(mA - nA);
    const float rB = mB == -infinity() ? 0.f : __expf(mB - nB);
    mA = nA;
    mB = nB;
    float sumA = 0.f, sumB = 0.f;
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const float m = c < 2 ? nA : nB;
        const float e = m == -infinity() ? 0.f : __expf(s[nt][c] - m);
        s[nt][c] = e;
        if (c < 2)
          sumA += e;
        else
          sumB += e;
      }
    lA = lA * rA + sumA; // per-thread partial sums; the quad is reduced at the end
    lB = lB * rB + sumB;
#pragma unroll
    for (int nd = 0; nd < D / 8; ++nd) {
      o[nd][0] *= rA;
      o[nd][1] *= rA;
      o[nd][2] *= rB;
      o[nd][3] *= rB;
    }
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      const unsigned pa[4] = {packBf16(s[2 * kk][0], s[2 * kk][1]),
                              packBf16(s[2 * kk][2], s[2 * kk][3]),
                              packBf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              packBf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int nd = 0; nd < D / 8; ++nd) {
        const unsigned short *base = Vt + (nd * 8 + g) * LV + kk * 16 + 2 * t;
        const unsigned bf[2] = {ld32(base), ld32(base + 8)};
        mmaBf16(o[nd], pa, bf);
      }
    }
  }
#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    lA += __shfl_xor_sync(0xffffffffu, lA, off);
    lB += __shfl_xor_sync(0xffffffffu, lB, off);
  }
  unsigned *out = mptr<unsigned>(p.out);
#pragma unroll
  for (int nd = 0; nd < D / 8; ++nd) {
    const long long c = h * D + nd * 8 + 2 * t;
    if (rowA < T_)
      out[((b * T_ + rowA) * rowQ + c) / 2] = packBf16(o[nd][0] / lA, o[nd][1] / lA);
    if (rowB < T_)
      out[((b * T_ + rowB) * rowQ + c) / 2] = packBf16(o[nd][2] / lB, o[nd][3] / lB);
  }
}

template <typename T, int D, int BQ, int BK, int THREADS>
__device__ void softmaxAttentionSimt(const SoftmaxAttentionArgs &p, float *smem) {
  constexpr int LD = D + 1, LP = BK + 1;
  float *Qs = smem;
  float *Ks = Qs + BQ * LD;
  float *Vs = Ks + BK * LD;
  float *Ps = Vs + BK * LD;
  float *rowM = Ps + BQ * LP;
  float *rowL = rowM + BQ;
  float *rowScale = rowL + BQ;

  const long long q0 = static_cast<long long>(blockIdx.x) * BQ;
  const long long h = blockIdx.y, b = blockIdx.z;
  const long long T_ = p.seq, H = p.heads, HKV = p.kv_heads;
  const long long kvh = h / (H / HKV);
  const long long rowQ = H * D, rowKV = HKV * D;
  const T *q = cptr<T>(p.q), *k = cptr<T>(p.k), *v = cptr<T>(p.v);
  const float scale = static_cast<float>(p.scale);

  using MapS = TileMap<BQ, BK, MicroEdge<BQ>::value, MicroEdge<BK>::value, THREADS>;
  using MapO = TileMap<BQ, D, MicroEdge<BQ>::value, MicroEdge<D>::value, THREADS>;

  for (int idx = threadIdx.x; idx < BQ * D; idx += THREADS) {
    const int i = idx / D, d = idx % D;
    Qs[i * LD + d] = q0 + i < T_ ? ld(q, (b * T_ + q0 + i) * rowQ + h * D + d) : 0.f;
  }
  for (int i = threadIdx.x; i < BQ; i += THREADS) {
    rowM[i] = -infinity();
    rowL[i] = 0.f;
  }
  float accO[MapO::PER][MicroEdge<BQ>::value][MicroEdge<D>::value];
  MapO::zero(accO);

  const long long kvEnd = q0 + BQ < T_ ? q0 + BQ : T_;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (long long k0 = 0; k0 < kvEnd; k0 += BK) {
    __syncthreads(); // the previous tile is done with K, V, P
    for (int idx = threadIdx.x; idx < BK * D; idx += THREADS) {
      const int j = idx / D, d = idx % D;
      const bool in = k0 + j < T_;
      const long long off = (b * T_ + k0 + j) * rowKV + kvh * D + d;
      Ks[j * LD + d] = in ? ld(k, off) : 0.f;
      Vs[j * LD + d] = in ? ld(v, off) : 0.f;
    }
    __syncthreads();
    {
      float accS[MapS::PER][MicroEdge<BQ>::value][MicroEdge<BK>::value];
      MapS::zero(accS);
      MapS::mac(
          accS, D, [&](int i, int d) { return Qs[i * LD + d]; },
          [&](int j, int d) { return Ks[j * LD + d]; });
      MapS::each(accS, [&](int i, int j, float &s) {
        const long long kj = k0 + j;
        Ps[i * LP + j] = kj <= q0 + i && kj < T_ ? s * scale : -infinity();
      });
    }
    __syncthreads();
    for (int i = warp; i < BQ; i += THREADS / 32) {
      float mx = -infinity();
      for (int j = lane; j < BK; j += 32)
        mx = fmaxf(mx, Ps[i * LP + j]);
      mx = warpMax(mx);
      const float mOld = rowM[i];
      const float mNew = fmaxf(mOld, mx);
      float sum = 0.f;
      for (int j = lane; j < BK; j += 32) {
        const float e = mNew == -infinity() ? 0.f : __expf(Ps[i * LP + j] - mNew);
        Ps[i * LP + j] = e;
        sum += e;
      }
      sum = warpSum(sum);
      if (lane == 0) {
        const float r = mOld == -infinity() ? 0.f : __expf(mOld - mNew);
        rowScale[i] = r;
        rowL[i] = rowL[i] * r + sum;
        rowM[i] = mNew;
      }
    }
    __syncthreads();
    MapO::each(accO, [&](int i, int, float &o) { o *= rowScale[i]; });
    MapO::mac(
        accO, BK, [&](int i, int j) { return Ps[i * LP + j]; },
        [&](int d, int j) { return Vs[j * LD + d]; });
  }
  T *out = mptr<T>(p.out);
  MapO::each(accO, [&](int i, int d, float &o) {
    if (q0 + i < T_)
      st(out, (b * T_ + q0 + i) * rowQ + h * D + d, o / rowL[i]);
  });
}

/// f32 and bf16 share one entry signature; `smem` is the dynamic shared memory of the f32 form
/// (attentionSmemFloats), unused by the bf16 form.
template <typename T, int D, int BQ, int BK, int THREADS>
__device__ void softmaxAttention(const SoftmaxAttentionArgs &p, float *smem) {
  if constexpr (sizeof(T) == 2)
    softmaxAttentionTensorCores<D, BQ, BK, THREADS>(p);
  else
    softmaxAttentionSimt<T, D, BQ, BK, THREADS>(p, smem);
}

} // namespace k
} // namespace mm
