// softmax_attention_grad (docs/kernels.md): backward of the causal GQA softmax
// attention, FlashAttention-2 style. Query head h reads kv head h / (Hq/Hkv);
// with s = q·k, p = softmax(scale·s) over keys u ≤ t:
//   dv_u = Σ_t p_tu dO_t, dP_tu = dO_t·v_u, dS_tu = p_tu (dP_tu − delta_t),
//   dk_u = scale Σ_t dS_tu q_t, dq_t = scale Σ_u dS_tu k_u,
// delta_t = Σ_u p_tu dP_tu (= rowsum(dO ∘ O)); dk, dv summed over the query
// heads of a kv head. Neither O nor the log-sum-exp is an operand of the op;
// when the CUDA executor saved them from the forward step (saved_lse,
// saved_out; runtime/TrainSchedule.h) "_delta" (delta = rowsum(dO ∘ O)) runs
// instead of "_stats", else:
//
//  "_stats" (grid (Tpad/128, Hq, B)): per 128 query rows, walk the key tiles up
//    to the diagonal with an online softmax in base 2 (scores scaled by
//    sl = scale·log2 e): running max m, sum l = Σ 2^(s·sl − m) and w = Σ
//    2^(s·sl − m)·dP (dP = dO·v, one more product per score instead of the P·V
//    of the forward). Writes lse = m + log2 l and delta = w / l (fp32 [B, Hq,
//    Tpad]; rows ≥ T get 0 and 0, which the next phase masks) and zeroes the
//    block's rows of the fp32 dq accumulator [B, T, Hq*D].
//  "_dkdv" (grid (Tpad/KEYS, Hkv, B), key blocks heaviest first): per block of
//    KEYS keys (sagDkdvKeys), for each query head of the group and each query
//    tile at or past the block's first key: pᵀ = 2^(sᵀ·sl − lse), dv += pᵀ dO,
//    dPᵀ = v dOᵀ, dSᵀ = pᵀ ∘ (dPᵀ − delta), dk += dSᵀ q; then dq_tile += dS k,
//    added atomically (fp32) into the accumulator. dk (× scale) and dv are
//    stored at the end.
//  "_dq": dq = scale · accumulator, in T.
//
// Operands: q, dout [B, T, Hq*D], k, v [B, T, Hkv*D], all T (f32 or bf16),
// row-major; dq, dk, dv the same shapes.
//
// Forms:
//  - bf16, D = 64 or 128 (tensor cores, mma.sync m16n8k16 + ldmatrix, sm_80+):
//    "_stats": 8 warps × 16 query rows; Q and dO fragments in registers, K and
//    V tiles of 32 keys double-buffered by cp.async as [32][D+8] bf16 (the
//    16-byte pad puts ldmatrix's 8 rows on distinct banks); S = Q Kᵀ and dP =
//    dO Vᵀ fp32 in registers.
//    "_dkdv": KEYS/16 warps × 16 keys (8 warps at D = 64, 4 at D = 128); K and
//    V of the block in shared memory [KEYS][D+8]; Q and dO tiles of BQ =
//    sagFastBq(D) rows (64 at D = 64, 32 at D = 128), double-buffered; per warp
//    Sᵀ = K Qᵀ and dPᵀ = V dOᵀ (16 × BQ fp32 in registers), pᵀ and dSᵀ rounded
//    to bf16 as the A operands of dv += pᵀ dO and dk += dSᵀ Q (B from Q/dO by
//    ldmatrix.trans); dk and dv (16 × D fp32 each) stay in registers across the
//    whole loop. dSᵀ goes to shared memory [KEYS][BQ+8] bf16; after a barrier
//    the warps compute dq_tile (BQ × D) = dS K, each a 16-row piece (A = dS by
//    ldmatrix.trans of dSᵀ, B = K by ldmatrix.trans), added with
//    red.global.add.v2.f32 (sm_90; two scalar atomics before).
//  - everything else (f32, other head dims): SIMT in fp32, 32-row sub-tiles in
//    shared memory ([32][D+1] f32), same three phases; lanes own keys.
#pragma once

#include "kernels/common.cuh"
#include "kernels/softmax_attention.cuh"
#include "kernels/softmax_attention_grad.h"

namespace mm {
namespace k {

/// dq_acc[i], dq_acc[i+1] += (x, y) (8-byte aligned).
__device__ __forceinline__ void sagAtomicAdd2(float *p, float x, float y) {
#if __CUDA_ARCH__ >= 900
  asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(p), "f"(x),
               "f"(y)
               : "memory");
#else
  atomicAdd(p, x);
  atomicAdd(p + 1, y);
#endif
}

// ---------------------------------------------------------------------------
// SIMT forms (any T, any D).

template <typename T, int D>
__device__ void sagStatsSimt(const SoftmaxAttentionGradArgs &a, float *smem) {
  constexpr int LD = D + 1, THREADS = 256;
  float *Qs = smem, *Os = Qs + 32 * LD, *Ks = Os + 32 * LD, *Vs = Ks + 32 * LD;
  const long long T_ = a.seq, H = a.heads, HKV = a.kv_heads;
  const long long h = blockIdx.y, b = blockIdx.z, kvh = h / (H / HKV);
  const long long rowQ = H * D, rowKV = HKV * D;
  const T *q = cptr<T>(a.q), *k = cptr<T>(a.k), *v = cptr<T>(a.v),
          *dO = cptr<T>(a.dout);
  const float sl = static_cast<float>(a.scale) * 1.4426950408889634f;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const long long blk0 = static_cast<long long>(blockIdx.x) * 128;
  float *acc = mptr<float>(a.dq_acc);
  for (long long i = threadIdx.x; i < 128ll * D; i += THREADS) {
    const long long r = blk0 + i / D;
    if (r < T_)
      acc[(b * T_ + r) * rowQ + h * D + i % D] = 0.f;
  }
  float *lse = mptr<float>(a.lse) + (b * H + h) * a.tpad;
  float *delta = mptr<float>(a.delta) + (b * H + h) * a.tpad;
  for (int sub = 0; sub < 4; ++sub) {
    const long long r0 = blk0 + sub * 32;
    __syncthreads();
    for (int i = threadIdx.x; i < 32 * D; i += THREADS) {
      const int r = i / D, d = i % D;
      const bool in = r0 + r < T_;
      const long long off = (b * T_ + r0 + r) * rowQ + h * D + d;
      Qs[r * LD + d] = in ? ld(q, off) : 0.f;
      Os[r * LD + d] = in ? ld(dO, off) : 0.f;
    }
    float m[4], l[4], w[4];
#pragma unroll
    for (int rr = 0; rr < 4; ++rr) {
      m[rr] = -infinity();
      l[rr] = 0.f;
      w[rr] = 0.f;
    }
    const long long kvEnd = r0 + 32 < T_ ? r0 + 32 : T_;
    for (long long k0 = 0; k0 < kvEnd; k0 += 32) {
      __syncthreads();
      for (int i = threadIdx.x; i < 32 * D; i += THREADS) {
        const int j = i / D, d = i % D;
        const bool in = k0 + j < T_;
        const long long off = (b * T_ + k0 + j) * rowKV + kvh * D + d;
        Ks[j * LD + d] = in ? ld(k, off) : 0.f;
        Vs[j * LD + d] = in ? ld(v, off) : 0.f;
      }
      __syncthreads();
      const long long key = k0 + lane;
#pragma unroll
      for (int rr = 0; rr < 4; ++rr) {
        const int r = warp * 4 + rr;
        const long long row = r0 + r;
        float s = 0.f, dp = 0.f;
        for (int d = 0; d < D; ++d) {
          s = fmaf(Qs[r * LD + d], Ks[lane * LD + d], s);
          dp = fmaf(Os[r * LD + d], Vs[lane * LD + d], dp);
        }
        const bool valid = key <= row && key < T_;
        const float s2 = valid ? s * sl : -infinity();
        const float mx = fmaxf(m[rr], warpMax(s2));
        if (mx == -infinity())
          continue; // (rows past T with no key yet: nothing to add)
        const float pr = valid ? exp2f(s2 - mx) : 0.f;
        const float rs = m[rr] == -infinity() ? 0.f : exp2f(m[rr] - mx);
        l[rr] = l[rr] * rs + warpSum(pr);
        w[rr] = w[rr] * rs + warpSum(pr * dp);
        m[rr] = mx;
      }
    }
    if (lane < 4) {
      const long long row = r0 + warp * 4 + lane;
      float mm = m[0], ll = l[0], ww = w[0];
#pragma unroll
      for (int rr = 1; rr < 4; ++rr)
        if (lane == rr) {
          mm = m[rr];
          ll = l[rr];
          ww = w[rr];
        }
      lse[row] = row < T_ ? mm + log2f(ll) : 0.f;
      delta[row] = row < T_ ? ww / ll : 0.f;
    }
  }
}

template <typename T, int D, int KEYS, int THREADS>
__device__ void sagDkdvSimt(const SoftmaxAttentionGradArgs &a, float *smem) {
  constexpr int LD = D + 1, NA = (32 * D + THREADS - 1) / THREADS;
  float *Qs = smem, *Os = Qs + 32 * LD, *Ks = Os + 32 * LD, *Vs = Ks + 32 * LD;
  float *Ps = Vs + 32 * LD, *Ss = Ps + 32 * 33, *Ls = Ss + 32 * 33,
        *Dl = Ls + 32;
  const long long T_ = a.seq, H = a.heads, HKV = a.kv_heads, G = H / HKV;
  const long long kvh = blockIdx.y, b = blockIdx.z;
  const long long rowQ = H * D, rowKV = HKV * D;
  const T *q = cptr<T>(a.q), *k = cptr<T>(a.k), *v = cptr<T>(a.v),
          *dO = cptr<T>(a.dout);
  const float sl = static_cast<float>(a.scale) * 1.4426950408889634f;
  const int tid = threadIdx.x;
  float *acc = mptr<float>(a.dq_acc);
  for (int sub = 0; sub < KEYS / 32; ++sub) {
    const long long kk0 = static_cast<long long>(blockIdx.x) * KEYS + sub * 32;
    if (kk0 >= T_)
      break;
    __syncthreads();
    for (int i = tid; i < 32 * D; i += THREADS) {
      const int j = i / D, d = i % D;
      const bool in = kk0 + j < T_;
      const long long off = (b * T_ + kk0 + j) * rowKV + kvh * D + d;
      Ks[j * LD + d] = in ? ld(k, off) : 0.f;
      Vs[j * LD + d] = in ? ld(v, off) : 0.f;
    }
    float dk[NA], dv[NA];
#pragma unroll
    for (int i = 0; i < NA; ++i)
      dk[i] = dv[i] = 0.f;
    for (long long hi = 0; hi < G; ++hi) {
      const long long h = kvh * G + hi;
      const float *lse = cptr<float>(a.lse) + (b * H + h) * a.tpad;
      const float *delta = cptr<float>(a.delta) + (b * H + h) * a.tpad;
      for (long long q0 = kk0; q0 < T_; q0 += 32) {
        __syncthreads();
        for (int i = tid; i < 32 * D; i += THREADS) {
          const int r = i / D, d = i % D;
          const bool in = q0 + r < T_;
          const long long off = (b * T_ + q0 + r) * rowQ + h * D + d;
          Qs[r * LD + d] = in ? ld(q, off) : 0.f;
          Os[r * LD + d] = in ? ld(dO, off) : 0.f;
        }
        if (tid < 32) {
          Ls[tid] = lse[q0 + tid]; // q0 + tid < Tpad
          Dl[tid] = delta[q0 + tid];
        }
        __syncthreads();
#pragma unroll
        for (int c = 0; c < 1024 / THREADS; ++c) {
          const int e = tid + THREADS * c, i = e >> 5, j = e & 31;
          float s = 0.f, dp = 0.f;
          for (int d = 0; d < D; ++d) {
            s = fmaf(Qs[i * LD + d], Ks[j * LD + d], s);
            dp = fmaf(Os[i * LD + d], Vs[j * LD + d], dp);
          }
          const bool valid = kk0 + j <= q0 + i && q0 + i < T_;
          const float pr = valid ? exp2f(s * sl - Ls[i]) : 0.f;
          Ps[i * 33 + j] = pr;
          Ss[i * 33 + j] = valid ? pr * (dp - Dl[i]) : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int c = 0; c < NA; ++c) {
          const int e = tid + THREADS * c;
          if (e < 32 * D) {
            const int j = e / D, d = e % D;
            float sv = 0.f, sk = 0.f;
            for (int i = 0; i < 32; ++i) {
              sv = fmaf(Ps[i * 33 + j], Os[i * LD + d], sv);
              sk = fmaf(Ss[i * 33 + j], Qs[i * LD + d], sk);
            }
            dv[c] += sv;
            dk[c] += sk;
          }
        }
        for (int e = tid; e < 32 * D; e += THREADS) {
          const int i = e / D, d = e % D;
          if (q0 + i >= T_)
            continue;
          float sq = 0.f;
          for (int j = 0; j < 32; ++j)
            sq = fmaf(Ss[i * 33 + j], Ks[j * LD + d], sq);
          atomicAdd(acc + (b * T_ + q0 + i) * rowQ + h * D + d, sq);
        }
      }
    }
    const float scale = static_cast<float>(a.scale);
    T *dkp = mptr<T>(a.dk), *dvp = mptr<T>(a.dv);
#pragma unroll
    for (int c = 0; c < NA; ++c) {
      const int e = tid + THREADS * c;
      if (e < 32 * D) {
        const int j = e / D, d = e % D;
        if (kk0 + j < T_) {
          const long long off = (b * T_ + kk0 + j) * rowKV + kvh * D + d;
          st(dkp, off, dk[c] * scale);
          st(dvp, off, dv[c]);
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Tensor-core forms (bf16, D = 64 or 128).

/// Per-lane ldmatrix byte offsets in a [rows][LD] bf16 tile, for 16×16
/// pieces: A operand stored [m][k] (plain), A stored [k][m] (.trans), B stored
/// [n][k] (plain; regs {0,1} = n 0..7, {2,3} = n 8..15), B stored [k][n]
/// (.trans; same register split).
template <int LD> __device__ __forceinline__ unsigned sagLaneA(int lane) {
  return 2u * (((lane & 7) + ((lane >> 3) & 1) * 8) * LD + (lane >> 4) * 8);
}
template <int LD> __device__ __forceinline__ unsigned sagLaneAT(int lane) {
  return 2u * (((lane & 7) + (lane >> 4) * 8) * LD + ((lane >> 3) & 1) * 8);
}
template <int LD> __device__ __forceinline__ unsigned sagLaneB(int lane) {
  return 2u * (((lane & 7) + (lane >> 4) * 8) * LD + ((lane >> 3) & 1) * 8);
}
template <int LD> __device__ __forceinline__ unsigned sagLaneBT(int lane) {
  return 2u * (((lane & 7) + ((lane >> 3) & 1) * 8) * LD + (lane >> 4) * 8);
}

template <int D, int BK = sagFastStatsBk(D)>
__device__ void sagStatsFast(const SoftmaxAttentionGradArgs &a, float *smem) {
  constexpr int LD = D + 8, TILE = BK * LD, THREADS = 256;
  constexpr int CHUNKS = BK * (D / 8);
  const unsigned smBase = sharedAddr(smem); // stage s: K at 2s·TILE, V after
  const long long HB = static_cast<long long>(gridDim.y) * gridDim.z;
  const long long lin = blockIdx.x + static_cast<long long>(gridDim.x) *
                                         (blockIdx.y + gridDim.y * blockIdx.z);
  const long long hb = lin % HB;
  const long long q0 = (gridDim.x - 1 - lin / HB) * 128; // heaviest first
  const long long h = hb % gridDim.y, b = hb / gridDim.y;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2,
            t = lane & 3;
  const long long T_ = a.seq, H = a.heads, HKV = a.kv_heads;
  const long long kvh = h / (H / HKV);
  const long long rowQ = H * D, rowKV = HKV * D;
  const unsigned short *q = cptr<unsigned short>(a.q),
                       *k = cptr<unsigned short>(a.k),
                       *v = cptr<unsigned short>(a.v),
                       *dO = cptr<unsigned short>(a.dout);
  const float sl = static_cast<float>(a.scale) * 1.4426950408889634f;
  const long long warpRow = q0 + warp * 16, rowA = warpRow + g, rowB = rowA + 8;
  const long long kvEnd = q0 + 128 < T_ ? q0 + 128 : T_;
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
  // Zero this block's rows of the dq accumulator (the "_dkdv" launch adds).
  {
    float4 *acc = mptr<float4>(a.dq_acc);
    for (int i = threadIdx.x; i < 128 * D / 4; i += THREADS) {
      const long long r = q0 + i / (D / 4);
      if (r < T_)
        acc[((b * T_ + r) * rowQ + h * D) / 4 + i % (D / 4)] =
            make_float4(0.f, 0.f, 0.f, 0.f);
    }
  }
  auto ld32 = [](const unsigned short *ptr) {
    return *reinterpret_cast<const unsigned *>(ptr);
  };
  unsigned qa[D / 16][4], oa[D / 16][4];
#pragma unroll
  for (int kd = 0; kd < D / 16; ++kd) {
    const int c = kd * 16 + 2 * t;
    const long long pa = (b * T_ + rowA) * rowQ + h * D + c;
    const long long pb = (b * T_ + rowB) * rowQ + h * D + c;
    qa[kd][0] = rowA < T_ ? ld32(q + pa) : 0u;
    qa[kd][1] = rowB < T_ ? ld32(q + pb) : 0u;
    qa[kd][2] = rowA < T_ ? ld32(q + pa + 8) : 0u;
    qa[kd][3] = rowB < T_ ? ld32(q + pb + 8) : 0u;
    oa[kd][0] = rowA < T_ ? ld32(dO + pa) : 0u;
    oa[kd][1] = rowB < T_ ? ld32(dO + pb) : 0u;
    oa[kd][2] = rowA < T_ ? ld32(dO + pa + 8) : 0u;
    oa[kd][3] = rowB < T_ ? ld32(dO + pb + 8) : 0u;
  }
  float mA = -infinity(), mB = -infinity(), lA = 0.f, lB = 0.f, wA = 0.f,
        wB = 0.f;
  const unsigned bLane = sagLaneB<LD>(lane);
  for (int tile = 0; tile < nTiles; ++tile) {
    cpAsyncWaitAll();
    __syncthreads();
    if (tile + 1 < nTiles)
      loadTile(tile + 1);
    const long long k0 = static_cast<long long>(tile) * BK;
    if (k0 > warpRow + 15 || warpRow >= T_)
      continue;
    const unsigned kBase = smBase + (tile & 1) * (4 * TILE),
                   vBase = kBase + 2 * TILE;
    float s[BK / 8][4], dp[BK / 8][4];
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt)
#pragma unroll
      for (int c = 0; c < 4; ++c)
        s[nt][c] = dp[nt][c] = 0.f;
#pragma unroll
    for (int kd = 0; kd < D / 16; ++kd)
#pragma unroll
      for (int np = 0; np < BK / 16; ++np) {
        unsigned kb[4], vb[4];
        const unsigned off = bLane + 2 * (np * 16 * LD + kd * 16);
        ldMatrix4(kb, kBase + off);
        ldMatrix4(vb, vBase + off);
        const unsigned k0b[2] = {kb[0], kb[1]}, k1b[2] = {kb[2], kb[3]};
        const unsigned v0b[2] = {vb[0], vb[1]}, v1b[2] = {vb[2], vb[3]};
        mmaBf16(s[2 * np], qa[kd], k0b);
        mmaBf16(s[2 * np + 1], qa[kd], k1b);
        mmaBf16(dp[2 * np], oa[kd], v0b);
        mmaBf16(dp[2 * np + 1], oa[kd], v1b);
      }
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
      mxA = fmaxf(mxA, fmaxf(s[nt][0], s[nt][1]) * sl);
      mxB = fmaxf(mxB, fmaxf(s[nt][2], s[nt][3]) * sl);
    }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, off));
      mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, off));
    }
    // Rows < T see key 0 in tile 0: maxima finite from the first tile on
    // (2^(-inf) = 0 rescales the empty sums); rows ≥ T are skipped per warp
    // or have finite scores (zero q) and are overwritten at the end.
    const float rA = exp2Approx(mA - mxA), rB = exp2Approx(mB - mxB);
    mA = mxA;
    mB = mxB;
    float sumA = 0.f, sumB = 0.f, wsA = 0.f, wsB = 0.f;
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt) {
      const float p0 = exp2Approx(fmaf(s[nt][0], sl, -mA));
      const float p1 = exp2Approx(fmaf(s[nt][1], sl, -mA));
      const float p2 = exp2Approx(fmaf(s[nt][2], sl, -mB));
      const float p3 = exp2Approx(fmaf(s[nt][3], sl, -mB));
      sumA += p0 + p1;
      sumB += p2 + p3;
      wsA = fmaf(p0, dp[nt][0], fmaf(p1, dp[nt][1], wsA));
      wsB = fmaf(p2, dp[nt][2], fmaf(p3, dp[nt][3], wsB));
    }
    lA = lA * rA + sumA;
    lB = lB * rB + sumB;
    wA = wA * rA + wsA;
    wB = wB * rB + wsB;
  }
#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    lA += __shfl_xor_sync(0xffffffffu, lA, off);
    lB += __shfl_xor_sync(0xffffffffu, lB, off);
    wA += __shfl_xor_sync(0xffffffffu, wA, off);
    wB += __shfl_xor_sync(0xffffffffu, wB, off);
  }
  if (t == 0) {
    float *lse = mptr<float>(a.lse) + (b * H + h) * a.tpad;
    float *delta = mptr<float>(a.delta) + (b * H + h) * a.tpad;
    lse[rowA] = rowA < T_ ? mA + log2f(lA) : 0.f;
    delta[rowA] = rowA < T_ ? wA / lA : 0.f;
    lse[rowB] = rowB < T_ ? mB + log2f(lB) : 0.f;
    delta[rowB] = rowB < T_ ? wB / lB : 0.f;
  }
}

template <int D, int BQ = sagFastBq(D), int BK = sagDkdvKeys(D)>
__device__ void sagDkdvFast(const SoftmaxAttentionGradArgs &a, float *smem) {
  constexpr int LD = D + 8, LDS = BQ + 8;
  constexpr int WARPS = BK / 16, THREADS = 32 * WARPS, QG = BQ / 16,
                DW = D / (WARPS / QG);
  static_assert(WARPS % QG == 0 && DW % 16 == 0, "dq pieces of 16 columns");
  // Shared layout (bf16): K [BK][LD], V [BK][LD], stage s: Q, dO [BQ][LD],
  // dSᵀ [BK][LDS].
  constexpr unsigned KV = 2u * BK * LD, QT = 2u * BQ * LD;
  const unsigned smK = sharedAddr(smem), smV = smK + KV, smQ = smV + KV;
  const unsigned smS = smQ + 4 * QT; // after two stages of (Q, dO)
  unsigned short *dsT = reinterpret_cast<unsigned short *>(
      reinterpret_cast<char *>(smem) + (smS - smK));

  const long long HB = static_cast<long long>(gridDim.y) * gridDim.z;
  const long long lin = blockIdx.x + static_cast<long long>(gridDim.x) *
                                         (blockIdx.y + gridDim.y * blockIdx.z);
  const long long hb = lin % HB;
  const long long k0 = (lin / HB) * BK; // key block 0 (the most queries) first
  const long long kvh = hb % gridDim.y, b = hb / gridDim.y;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2,
            t = lane & 3;
  const long long T_ = a.seq, H = a.heads, HKV = a.kv_heads, G = H / HKV;
  const long long rowQ = H * D, rowKV = HKV * D;
  if (k0 >= T_)
    return; // (whole block; no barrier reached)
  const unsigned short *q = cptr<unsigned short>(a.q),
                       *k = cptr<unsigned short>(a.k),
                       *v = cptr<unsigned short>(a.v),
                       *dO = cptr<unsigned short>(a.dout);
  const float sl = static_cast<float>(a.scale) * 1.4426950408889634f;

  // K and V of the block.
  for (int idx = threadIdx.x; idx < BK * (D / 8); idx += THREADS) {
    const int j = idx / (D / 8), c = (idx % (D / 8)) * 8;
    const bool in = k0 + j < T_;
    const long long off = (b * T_ + (in ? k0 + j : 0)) * rowKV + kvh * D + c;
    const unsigned at = 2 * (j * LD + c);
    cpAsync16(smK + at, k + off, in);
    cpAsync16(smV + at, v + off, in);
  }
  const long long qt0 = k0 / BQ, nQ = (T_ + BQ - 1) / BQ;
  const long long perHead = nQ - qt0, nIt = perHead * G;
  auto loadQ = [&](long long it) {
    const long long h = kvh * G + it / perHead;
    const long long q0 = (qt0 + it % perHead) * BQ;
    const unsigned dst = smQ + (it & 1) * (2 * QT);
#pragma unroll
    for (int idx = threadIdx.x; idx < BQ * (D / 8); idx += THREADS) {
      const int r = idx / (D / 8), c = (idx % (D / 8)) * 8;
      const bool in = q0 + r < T_;
      const long long off = (b * T_ + (in ? q0 + r : 0)) * rowQ + h * D + c;
      const unsigned at = dst + 2 * (r * LD + c);
      cpAsync16(at, q + off, in);
      cpAsync16(at + QT, dO + off, in);
    }
    cpAsyncCommit();
  };
  loadQ(0);

  float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
  for (int nd = 0; nd < D / 8; ++nd)
#pragma unroll
    for (int c = 0; c < 4; ++c)
      dk[nd][c] = dv[nd][c] = 0.f;
  const long long kw = k0 + warp * 16; // this warp's keys kw + g, kw + g + 8
  const long long keyA = kw + g, keyB = keyA + 8;
  const unsigned aLane = sagLaneA<LD>(lane), bLane = sagLaneB<LD>(lane),
                 btLane = sagLaneBT<LD>(lane);
  const unsigned kA = smK + aLane + 2 * (warp * 16 * LD),
                 vA = smV + aLane + 2 * (warp * 16 * LD);
  float *acc = mptr<float>(a.dq_acc);

  for (long long it = 0; it < nIt; ++it) {
    const long long h = kvh * G + it / perHead;
    const long long q0 = (qt0 + it % perHead) * BQ;
    const float *lse = cptr<float>(a.lse) + (b * H + h) * a.tpad + q0;
    const float *delta = cptr<float>(a.delta) + (b * H + h) * a.tpad + q0;
    cpAsyncWaitAll();
    __syncthreads(); // tile `it` landed; everyone is done with the other stage
                     // and with dSᵀ
    if (it + 1 < nIt)
      loadQ(it + 1);
    const unsigned qB = smQ + (it & 1) * (2 * QT), oB = qB + QT;

    // Sᵀ = K Qᵀ and dPᵀ = V dOᵀ for this warp's 16 keys × BQ queries.
    float s[BQ / 8][4], dp[BQ / 8][4];
#pragma unroll
    for (int nt = 0; nt < BQ / 8; ++nt)
#pragma unroll
      for (int c = 0; c < 4; ++c)
        s[nt][c] = dp[nt][c] = 0.f;
#pragma unroll
    for (int kd = 0; kd < D / 16; ++kd) {
      unsigned ka[4], va[4];
      ldMatrix4(ka, kA + 2 * kd * 16);
      ldMatrix4(va, vA + 2 * kd * 16);
#pragma unroll
      for (int np = 0; np < BQ / 16; ++np) {
        unsigned qb[4], ob[4];
        const unsigned off = bLane + 2 * (np * 16 * LD + kd * 16);
        ldMatrix4(qb, qB + off);
        ldMatrix4(ob, oB + off);
        const unsigned q0b[2] = {qb[0], qb[1]}, q1b[2] = {qb[2], qb[3]};
        const unsigned o0b[2] = {ob[0], ob[1]}, o1b[2] = {ob[2], ob[3]};
        mmaBf16(s[2 * np], ka, q0b);
        mmaBf16(s[2 * np + 1], ka, q1b);
        mmaBf16(dp[2 * np], va, o0b);
        mmaBf16(dp[2 * np + 1], va, o1b);
      }
    }
    // pᵀ and dSᵀ; masked (key > query, or query ≥ T) entries are 0.
    const bool edge = q0 < kw + 16 || q0 + BQ > T_;
#pragma unroll
    for (int nt = 0; nt < BQ / 8; ++nt) {
      const int qc = nt * 8 + 2 * t;
      const float2 ls = *reinterpret_cast<const float2 *>(lse + qc);
      const float2 de = *reinterpret_cast<const float2 *>(delta + qc);
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const float lq = (c & 1) ? ls.y : ls.x, dq = (c & 1) ? de.y : de.x;
        float pr = exp2Approx(fmaf(s[nt][c], sl, -lq));
        if (edge) {
          const long long qq = q0 + qc + (c & 1);
          if ((c < 2 ? keyA : keyB) > qq || qq >= T_)
            pr = 0.f;
        }
        s[nt][c] = pr;
        dp[nt][c] = pr * (dp[nt][c] - dq);
      }
    }
    // dv += pᵀ dO, dk += dSᵀ Q (k = queries); dSᵀ to shared memory.
#pragma unroll
    for (int kk = 0; kk < BQ / 16; ++kk) {
      const unsigned pa[4] = {packBf16(s[2 * kk][0], s[2 * kk][1]),
                              packBf16(s[2 * kk][2], s[2 * kk][3]),
                              packBf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              packBf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
      const unsigned da[4] = {packBf16(dp[2 * kk][0], dp[2 * kk][1]),
                              packBf16(dp[2 * kk][2], dp[2 * kk][3]),
                              packBf16(dp[2 * kk + 1][0], dp[2 * kk + 1][1]),
                              packBf16(dp[2 * kk + 1][2], dp[2 * kk + 1][3])};
      unsigned *row0 = reinterpret_cast<unsigned *>(
          dsT + (warp * 16 + g) * LDS + kk * 16 + 2 * t);
      unsigned *row1 = row0 + 8 * LDS / 2;
      row0[0] = da[0];
      row1[0] = da[1];
      row0[4] = da[2];
      row1[4] = da[3];
#pragma unroll
      for (int nd = 0; nd < D / 16; ++nd) {
        unsigned ob[4], qb[4];
        const unsigned off = btLane + 2 * (kk * 16 * LD + nd * 16);
        ldMatrix4Trans(ob, oB + off);
        ldMatrix4Trans(qb, qB + off);
        const unsigned o0b[2] = {ob[0], ob[1]}, o1b[2] = {ob[2], ob[3]};
        const unsigned q0b[2] = {qb[0], qb[1]}, q1b[2] = {qb[2], qb[3]};
        mmaBf16(dv[2 * nd], pa, o0b);
        mmaBf16(dv[2 * nd + 1], pa, o1b);
        mmaBf16(dk[2 * nd], da, q0b);
        mmaBf16(dk[2 * nd + 1], da, q1b);
      }
    }
    __syncthreads(); // dSᵀ complete
    // dq_tile [BQ × D] += dS K: warp (qg, dg) takes rows qg·16.., columns
    // dg·DW...
    {
      const int qg = warp % QG, dg = warp / QG;
      float o[DW / 8][4];
#pragma unroll
      for (int nt = 0; nt < DW / 8; ++nt)
#pragma unroll
        for (int c = 0; c < 4; ++c)
          o[nt][c] = 0.f;
      const unsigned sA = smS + sagLaneAT<LDS>(lane) + 2 * (qg * 16);
#pragma unroll
      for (int kk = 0; kk < BK / 16; ++kk) {
        unsigned sa[4];
        ldMatrix4Trans(sa, sA + 2 * (kk * 16 * LDS));
#pragma unroll
        for (int np = 0; np < DW / 16; ++np) {
          unsigned kb[4];
          ldMatrix4Trans(kb,
                         smK + btLane + 2 * (kk * 16 * LD + dg * DW + np * 16));
          const unsigned b0[2] = {kb[0], kb[1]}, b1[2] = {kb[2], kb[3]};
          mmaBf16(o[2 * np], sa, b0);
          mmaBf16(o[2 * np + 1], sa, b1);
        }
      }
      const long long rA = q0 + qg * 16 + g, rB = rA + 8;
#pragma unroll
      for (int nt = 0; nt < DW / 8; ++nt) {
        const long long c = h * D + dg * DW + nt * 8 + 2 * t;
        if (rA < T_)
          sagAtomicAdd2(acc + (b * T_ + rA) * rowQ + c, o[nt][0], o[nt][1]);
        if (rB < T_)
          sagAtomicAdd2(acc + (b * T_ + rB) * rowQ + c, o[nt][2], o[nt][3]);
      }
    }
  }
  // dk = scale · Σ dSᵀ q, dv = Σ pᵀ dO.
  const float scale = static_cast<float>(a.scale);
  unsigned *dkp = mptr<unsigned>(a.dk), *dvp = mptr<unsigned>(a.dv);
#pragma unroll
  for (int nd = 0; nd < D / 8; ++nd) {
    const long long c = kvh * D + nd * 8 + 2 * t;
    if (keyA < T_) {
      const long long at = ((b * T_ + keyA) * rowKV + c) / 2;
      dkp[at] = packBf16(dk[nd][0] * scale, dk[nd][1] * scale);
      dvp[at] = packBf16(dv[nd][0], dv[nd][1]);
    }
    if (keyB < T_) {
      const long long at = ((b * T_ + keyB) * rowKV + c) / 2;
      dkp[at] = packBf16(dk[nd][2] * scale, dk[nd][3] * scale);
      dvp[at] = packBf16(dv[nd][2], dv[nd][3]);
    }
  }
}

// ---------------------------------------------------------------------------
// Dispatch.

template <typename T, int D>
__device__ void sagStats(const SoftmaxAttentionGradArgs &a, float *smem) {
  if constexpr (sizeof(T) == 2 && sagFastHeadDim(D))
    sagStatsFast<D>(a, smem);
  else
    sagStatsSimt<T, D>(a, smem);
}
template <typename T, int D>
__device__ void sagDkdv(const SoftmaxAttentionGradArgs &a, float *smem) {
  if constexpr (sizeof(T) == 2 && sagFastHeadDim(D))
    sagDkdvFast<D>(a, smem);
  else
    sagDkdvSimt<T, D, sagDkdvKeys(D), sagDkdvThreads(D)>(a, smem);
}
/// "_delta" (the forward's lse and O at hand): per 128 query rows of one
/// head, delta = rowsum(dO ∘ O) (a warp per row, fp32), lse and delta of
/// the padding rows T..Tpad zeroed, and the rows' dq accumulator zeroed.
template <typename T, int D>
__device__ void sagDelta(const SoftmaxAttentionGradArgs &a) {
  const long long T_ = a.seq, H = a.heads, h = blockIdx.y, b = blockIdx.z;
  const long long rowQ = H * D, blk0 = static_cast<long long>(blockIdx.x) * 128;
  const T *o = cptr<T>(a.saved_out), *dO = cptr<T>(a.dout);
  float *acc = mptr<float>(a.dq_acc);
  float *lse = mptr<float>(a.lse) + (b * H + h) * a.tpad;
  float *delta = mptr<float>(a.delta) + (b * H + h) * a.tpad;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int r = warp; r < 128; r += 8) {
    const long long row = blk0 + r;
    if (row >= T_) {
      if (lane == 0) {
        lse[row] = 0.f;
        delta[row] = 0.f;
      }
      continue;
    }
    const long long at = (b * T_ + row) * rowQ + h * D;
    float w = 0.f;
    for (int d = lane; d < D; d += 32) {
      w += ld(o, at + d) * ld(dO, at + d);
      acc[at + d] = 0.f;
    }
    w = warpSum(w);
    if (lane == 0)
      delta[row] = w;
  }
}

template <typename T, int D>
__device__ void sagDq(const SoftmaxAttentionGradArgs &a) {
  const long long n = a.batch * a.seq * a.heads * D;
  const float scale = static_cast<float>(a.scale);
  const float *acc = cptr<float>(a.dq_acc);
  T *dq = mptr<T>(a.dq);
  for (long long i = blockIdx.x * 256ll + threadIdx.x; i < n;
       i += 256ll * gridDim.x)
    st(dq, i, acc[i] * scale);
}

} // namespace k
} // namespace mm

/// One entry per phase (kernels/softmax_attention_grad.h lists the plan).
#define MM_SOFTMAX_ATTENTION_GRAD_ENTRIES(prefix, T, D)                        \
  extern "C" __global__ void __launch_bounds__(                                \
      256, mm::k::sagStatsMinBlocks(sizeof(T), D))                             \
      prefix##_stats(mm::k::SoftmaxAttentionGradArgs a) {                      \
    extern __shared__ __align__(16) float mmSagSmem[];                         \
    mm::k::sagStats<T, D>(a, mmSagSmem);                                       \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(                                \
      mm::k::sagDkdvThreads(D), mm::k::sagDkdvMinBlocks(sizeof(T), D))         \
      prefix##_dkdv(mm::k::SoftmaxAttentionGradArgs a) {                       \
    extern __shared__ __align__(16) float mmSagSmem[];                         \
    mm::k::sagDkdv<T, D>(a, mmSagSmem);                                        \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(256)                            \
      prefix##_delta(mm::k::SoftmaxAttentionGradArgs a) {                      \
    mm::k::sagDelta<T, D>(a);                                                  \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(256)                            \
      prefix##_dq(mm::k::SoftmaxAttentionGradArgs a) {                         \
    mm::k::sagDq<T, D>(a);                                                     \
  }
