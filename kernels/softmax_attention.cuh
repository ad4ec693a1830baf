// softmax_attention (docs/kernels.md): causal softmax attention forward with GQA, in the
// FlashAttention-2 form: per query tile, walk the key/value tiles up to the diagonal keeping a
// running row max m and row sum l in fp32 (online softmax), rescaling the output accumulator by
// exp(m_old - m_new) at each tile; divide by l at the end. Query head h reads kv head
// h / (Hq/Hkv).
//
// Operands: q [B, T, Hq*D], k and v [B, T, Hkv*D], out [B, T, Hq*D], all T, row-major.
// Tiling: grid (ceil(T/BQ), Hq, B); shared memory (floats, rows padded by one word):
// Q [BQ][D+1], K and V [BK][D+1], P [BQ][BK+1], m, l, rescale [BQ] = attentionSmemFloats.
// S = Q Kᵀ and O += P V run on TileMap register tiles (O stays in registers across tiles); one
// warp per query row does the softmax bookkeeping. Keys past T or past the diagonal are -inf.
#pragma once

#include "kernels/tile_gemm.cuh"

namespace mm {
namespace k {

template <typename T, int D, int BQ, int BK, int THREADS>
__device__ void softmaxAttention(const SoftmaxAttentionArgs &p, float *smem) {
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

} // namespace k
} // namespace mm
