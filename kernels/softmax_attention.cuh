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

/// Shared-memory address of a generic pointer into shared memory (the operand of cp.async and
/// ldmatrix).
__device__ __forceinline__ unsigned sharedAddr(const void *ptr) {
  unsigned a;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(ptr));
  return a;
}
/// 16 bytes global → shared without passing through registers; `valid` false writes zeros.
__device__ __forceinline__ void cpAsync16(unsigned dst, const void *src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n"); }
__device__ __forceinline__ void cpAsyncWaitAll() { asm volatile("cp.async.wait_group 0;\n"); }
/// Four 8×8 bf16 matrices; lanes 8i..8i+7 give the row addresses of matrix i. Plain: lane
/// (g,t) gets row g, columns 2t..2t+1 of each; `.trans`: rows 2t..2t+1 of column g.
__device__ __forceinline__ void ldMatrix4(unsigned (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldMatrix2(unsigned (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(addr));
}
__device__ __forceinline__ void ldMatrix4Trans(unsigned (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ float exp2Approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
/// Two floats rounded to nearest even into one register of two bf16 (the lower index in the
/// low half), in one instruction; the operands here are finite.
__device__ __forceinline__ unsigned packBf16Rn(float lo, float hi) {
  unsigned r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

template <int D, int BQ, int BK, int THREADS>
__device__ void softmaxAttentionTensorCores(const SoftmaxAttentionArgs &p, float *smem) {
  static_assert(THREADS == 2 * BQ && BQ % 16 == 0, "one warp per 16 query rows");
  static_assert(D % 16 == 0 && BK % 16 == 0 && D <= 256, "mma tiles");
  constexpr int LD = D + 8;           // bf16 row stride: ldmatrix's 8 rows hit distinct banks
  constexpr int TILE = BK * LD;       // one K or V tile
  constexpr int CHUNKS = BK * (D / 8); // 16-byte pieces of one tile
  unsigned short *sm = reinterpret_cast<unsigned short *>(smem);
  const unsigned smBase = sharedAddr(sm); // stage s: K at 2s·TILE, V at (2s+1)·TILE

  // Heaviest query tiles (the most key tiles under the causal mask) start first, across all
  // heads and batches: block n of the launch takes query tile nQ-1-n/(Hq·B).
  const long long HB = static_cast<long long>(gridDim.y) * gridDim.z;
  const long long lin =
      blockIdx.x + static_cast<long long>(gridDim.x) * (blockIdx.y + gridDim.y * blockIdx.z);
  const long long hb = lin % HB;
  const long long q0 = (gridDim.x - 1 - lin / HB) * BQ;
  const long long h = hb % gridDim.y, b = hb / gridDim.y;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const long long T_ = p.seq, H = p.heads, HKV = p.kv_heads;
  const long long kvh = h / (H / HKV);
  const long long rowQ = H * D, rowKV = HKV * D;
  const unsigned short *q = cptr<unsigned short>(p.q), *k = cptr<unsigned short>(p.k),
                       *v = cptr<unsigned short>(p.v);
  // Softmax in base 2: p = 2^(s·scale·log2e − m·scale·log2e), one FFMA and one EX2 per score.
  const float sl = static_cast<float>(p.scale) * 1.4426950408889634f;
  const long long warpRow = q0 + warp * 16, rowA = warpRow + g, rowB = rowA + 8;

  const long long kvEnd = q0 + BQ < T_ ? q0 + BQ : T_;
  const int nTiles = static_cast<int>((kvEnd + BK - 1) / BK);
  auto loadTile = [&](int tile) {
    const long long k0 = static_cast<long long>(tile) * BK;
    const unsigned dst = smBase + (tile & 1) * (4 * TILE);
#pragma unroll
    for (int idx = threadIdx.x; idx < CHUNKS; idx += THREADS) {
      const int j = idx / (D / 8), c = (idx % (D / 8)) * 8;
      const bool in = k0 + j < T_;
      const long long off = (b * T_ + (in ? k0 + j : 0)) * rowKV + kvh * D + c;
      const unsigned at = dst + 2 * (j * LD + c);
      cpAsync16(at, k + off, in);
      cpAsync16(at + 2 * TILE, v + off, in);
    }
    cpAsyncCommit();
  };
  loadTile(0);

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

  // Per-lane ldmatrix offsets (bytes): K tiles untransposed (matrix i = keys +0..7, d +8i),
  // V tiles transposed (matrix i = keys +8(i&1)..., d +8(i>>1)).
  const unsigned kLane = 2 * ((lane & 7) * LD + (lane >> 3) * 8);
  const unsigned vLane = 2 * (((lane & 7) + ((lane >> 3) & 1) * 8) * LD + (lane >> 4) * 8);

  for (int tile = 0; tile < nTiles; ++tile) {
    cpAsyncWaitAll();
    __syncthreads(); // this tile has landed; every warp is done with the other stage
    if (tile + 1 < nTiles)
      loadTile(tile + 1); // overlaps this tile's arithmetic
    const long long k0 = static_cast<long long>(tile) * BK;
    if (k0 > warpRow + 15)
      continue; // every key of the tile is past the diagonal for this warp's rows
    const unsigned kBase = smBase + (tile & 1) * (4 * TILE), vBase = kBase + 2 * TILE;

    float s[BK / 8][4];
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt)
#pragma unroll
      for (int c = 0; c < 4; ++c)
        s[nt][c] = 0.f;
#pragma unroll
    for (int kd = 0; kd < D / 16; kd += 2) {
#pragma unroll
      for (int nt = 0; nt < BK / 8; ++nt) {
        unsigned kb[4];
        const unsigned at = kBase + kLane + 2 * (nt * 8 * LD + kd * 16);
        if (kd + 1 < D / 16) {
          ldMatrix4(kb, at);
        } else {
          ldMatrix2(kb, at);
        }
        const unsigned b0[2] = {kb[0], kb[1]};
        mmaBf16(s[nt], qa[kd], b0);
        if (kd + 1 < D / 16) {
          const unsigned b1[2] = {kb[2], kb[3]};
          mmaBf16(s[nt], qa[kd + 1], b1);
        }
      }
    }
    // Only tiles that cross this warp's diagonal or the end of the sequence are masked.
    if (k0 + BK - 1 > warpRow || k0 + BK > T_) {
#pragma unroll
      for (int nt = 0; nt < BK / 8; ++nt)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const long long key = k0 + nt * 8 + 2 * t + (c & 1);
          if (key > (c < 2 ? rowA : rowB) || key >= T_)
            s[nt][c] = -infinity();
        }
    }
    float mxA = mA, mxB = mB;
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt) {
      mxA = fmaxf(mxA, fmaxf(s[nt][0], s[nt][1]));
      mxB = fmaxf(mxB, fmaxf(s[nt][2], s[nt][3]));
    }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, off));
      mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, off));
    }
    // Tile 0 shows key 0 to every row, so the maxima are finite from the first tile on; the
    // first rescale is 2^(-inf) = 0.
    const float rA = exp2Approx((mA - mxA) * sl), rB = exp2Approx((mB - mxB) * sl);
    mA = mxA;
    mB = mxB;
    const float nA = -mA * sl, nB = -mB * sl;
    float sumA = 0.f, sumB = 0.f;
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt) {
      s[nt][0] = exp2Approx(fmaf(s[nt][0], sl, nA));
      s[nt][1] = exp2Approx(fmaf(s[nt][1], sl, nA));
      s[nt][2] = exp2Approx(fmaf(s[nt][2], sl, nB));
      s[nt][3] = exp2Approx(fmaf(s[nt][3], sl, nB));
      sumA += s[nt][0] + s[nt][1];
      sumB += s[nt][2] + s[nt][3];
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
      const unsigned pa[4] = {packBf16Rn(s[2 * kk][0], s[2 * kk][1]),
                              packBf16Rn(s[2 * kk][2], s[2 * kk][3]),
                              packBf16Rn(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              packBf16Rn(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int nd = 0; nd < D / 8; nd += 2) {
        unsigned vb[4];
        ldMatrix4Trans(vb, vBase + vLane + 2 * (kk * 16 * LD + nd * 8));
        const unsigned b0[2] = {vb[0], vb[1]}, b1[2] = {vb[2], vb[3]};
        mmaBf16(o[nd], pa, b0);
        mmaBf16(o[nd + 1], pa, b1);
      }
    }
  }
#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    lA += __shfl_xor_sync(0xffffffffu, lA, off);
    lB += __shfl_xor_sync(0xffffffffu, lB, off);
  }
  const float iA = 1.f / lA, iB = 1.f / lB;
  unsigned *out = mptr<unsigned>(p.out);
#pragma unroll
  for (int nd = 0; nd < D / 8; ++nd) {
    const long long c = h * D + nd * 8 + 2 * t;
    if (rowA < T_)
      out[((b * T_ + rowA) * rowQ + c) / 2] = packBf16(o[nd][0] * iA, o[nd][1] * iA);
    if (rowB < T_)
      out[((b * T_ + rowB) * rowQ + c) / 2] = packBf16(o[nd][2] * iB, o[nd][3] * iB);
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
    softmaxAttentionTensorCores<D, BQ, BK, THREADS>(p, smem);
  else
    softmaxAttentionSimt<T, D, BQ, BK, THREADS>(p, smem);
}

} // namespace k
} // namespace mm
