// lightning_attention (docs/kernels.md): causal decayed linear attention, forward, in the
// Lightning Attention-2 form. With decay s = s_h of the head and blocks of BLOCK tokens,
// for each block (rows i < m of the block, Q K V its [m, D] slices):
//   O     = ((Q Kᵀ) ⊙ Dm) V  +  diag(exp(-s·i)) · Q · KV      intra-block + inter-block
//   KV   ← exp(-s·m) · KV  +  (K ⊙ exp(-s·(m-j)))ᵀ V            fp32 state [D, D]
// with Dm[i,j] = exp(-s(i-j)) for j ≤ i, else 0. With SILU_IN the qkv operand is the
// pre-activation and silu is applied as it is loaded (the `silu` step fused by mm-fuse).
//
// Operands: qkv [B, T, H*3*D] T (head h reads q|k|v from channels h*3D + [0,D) | [D,2D) | [2D,3D)),
// out [B, T, H*D] T (head-major), row-major. out must not alias qkv.
// Tiling: grid (D/DV, H, B). Output columns are independent, so each block owns DV columns of the
// value dim and keeps only KV[:, c0:c0+DV] in shared memory, walking the blocks of T in order.
// Shared memory (floats, rows padded by one word): Q, K [BLOCK][D+1], V [BLOCK][DV+1],
// P [BLOCK][BLOCK+1], KV [D][DV+1] = lightningSmemFloats(D, BLOCK, DV). All products run on
// TileMap register tiles in fp32; rows past T are zero-filled, so a ragged last block is exact.
#pragma once

#include "kernels/tile_gemm.cuh"

namespace mm {
namespace k {

template <typename T, int D, int BLOCK, int DV, int THREADS, bool SILU_IN>
__device__ void lightningAttention(const LightningArgs &p, float *smem) {
  static_assert(D % DV == 0, "DV must divide D");
  constexpr int LQ = D + 1, LV = DV + 1, LP = BLOCK + 1;
  float *Qs = smem;
  float *Ks = Qs + BLOCK * LQ;
  float *Vs = Ks + BLOCK * LQ;
  float *Ps = Vs + BLOCK * LV;
  float *KV = Ps + BLOCK * LP;

  const int c0 = blockIdx.x * DV;
  const long long h = blockIdx.y, b = blockIdx.z;
  const long long H = p.heads, T_ = p.seq;
  const double decay =
      pow(pow(2.0, -8.0 / static_cast<double>(H)), static_cast<double>(h + 1)) *
      (1.0 - static_cast<double>(p.layer) / (static_cast<double>(p.num_layers) - 1.0 + 1e-5) +
       1e-5);
  const float s = static_cast<float>(decay);

  using MapP = TileMap<BLOCK, BLOCK, MicroEdge<BLOCK>::value, MicroEdge<BLOCK>::value, THREADS>;
  using MapO = TileMap<BLOCK, DV, MicroEdge<BLOCK>::value, MicroEdge<DV>::value, THREADS>;
  using MapS = TileMap<D, DV, MicroEdge<D>::value, MicroEdge<DV>::value, THREADS>;

  for (int i = threadIdx.x; i < D * LV; i += THREADS)
    KV[i] = 0.f;

  const T *qkv = cptr<T>(p.qkv);
  T *out = mptr<T>(p.out);
  const long long rowIn = H * 3 * D, rowOut = H * D;
  for (long long b0 = 0; b0 < T_; b0 += BLOCK) {
    const int m = static_cast<int>(T_ - b0 < BLOCK ? T_ - b0 : BLOCK);
    __syncthreads(); // the previous block is done with Q, K, V, P
    for (int idx = threadIdx.x; idx < BLOCK * D; idx += THREADS) {
      const int i = idx / D, d = idx % D;
      float q = 0.f, kk = 0.f;
      if (i < m) {
        const long long base = (b * T_ + b0 + i) * rowIn + h * 3 * D;
        q = ld(qkv, base + d);
        kk = ld(qkv, base + D + d);
        if (SILU_IN) {
          q = siluF(q);
          kk = siluF(kk);
        }
      }
      Qs[i * LQ + d] = q;
      Ks[i * LQ + d] = kk;
    }
    for (int idx = threadIdx.x; idx < BLOCK * DV; idx += THREADS) {
      const int i = idx / DV, c = idx % DV;
      float v = 0.f;
      if (i < m) {
        v = ld(qkv, (b * T_ + b0 + i) * rowIn + h * 3 * D + 2 * D + c0 + c);
        if (SILU_IN)
          v = siluF(v);
      }
      Vs[i * LV + c] = v;
    }
    __syncthreads();

    // P = (Q Kᵀ) ⊙ Dm.
    {
      float acc[MapP::PER][MicroEdge<BLOCK>::value][MicroEdge<BLOCK>::value];
      MapP::zero(acc);
      MapP::mac(
          acc, D, [&](int i, int d) { return Qs[i * LQ + d]; },
          [&](int j, int d) { return Ks[j * LQ + d]; });
      MapP::each(acc, [&](int i, int j, float &v) {
        Ps[i * LP + j] = j <= i ? v * __expf(-s * static_cast<float>(i - j)) : 0.f;
      });
    }
    // O = diag(exp(-s i)) Q KV + P V.
    float accO[MapO::PER][MicroEdge<BLOCK>::value][MicroEdge<DV>::value];
    MapO::zero(accO);
    MapO::mac(
        accO, D, [&](int i, int d) { return Qs[i * LQ + d]; },
        [&](int c, int d) { return KV[d * LV + c]; });
    MapO::each(accO, [&](int i, int, float &v) { v *= __expf(-s * static_cast<float>(i)); });
    __syncthreads(); // P is complete
    MapO::mac(
        accO, BLOCK, [&](int i, int j) { return Ps[i * LP + j]; },
        [&](int c, int j) { return Vs[j * LV + c]; });
    MapO::each(accO, [&](int i, int c, float &v) {
      if (i < m)
        st(out, (b * T_ + b0 + i) * rowOut + h * D + c0 + c, v);
    });

    // KV ← exp(-s m) KV + (K ⊙ exp(-s(m-j)))ᵀ V; the row weights go on V.
    __syncthreads(); // every read of KV and V above is done
    for (int idx = threadIdx.x; idx < m * DV; idx += THREADS) {
      const int j = idx / DV, c = idx % DV;
      Vs[j * LV + c] *= __expf(-s * static_cast<float>(m - j));
    }
    __syncthreads();
    float accS[MapS::PER][MicroEdge<D>::value][MicroEdge<DV>::value];
    MapS::zero(accS);
    MapS::mac(
        accS, BLOCK, [&](int d, int j) { return Ks[j * LQ + d]; },
        [&](int c, int j) { return Vs[j * LV + c]; });
    const float blockDecay = __expf(-s * static_cast<float>(m));
    MapS::each(accS, [&](int d, int c, float &v) {
      KV[d * LV + c] = KV[d * LV + c] * blockDecay + v;
    });
  }
}

} // namespace k
} // namespace mm
