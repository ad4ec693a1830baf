// The small training kernels and the optimizers (docs/kernels.md, "Training
// kernels"): rms_norm_grad, silu_grad, sigmoid_grad, rope_grad,
// embedding_grad, grad_norm, adamw, came, came_vector, store_param, the
// lm_head softmax-cross-entropy rows, finite_check. Argument blocks:
// kernels/train_args.h; launch plans and workspace: kernels/train_small.h.
// References: runtime/cpu/TrainKernels.cpp (computed in double there, fp32
// here; reductions that span many elements are carried in double where the
// result is a scalar: grad_norm, the CAME rms terms).
//
// All of them are memory-bound. Common tiling: flat kernels walk the operands
// as groups of 4 elements (float4 for f32, 8-byte uint2 for bf16) with a
// grid-stride loop when every pointer is aligned, plus a scalar tail (and a
// scalar path for unaligned operands). Element layouts are row-major.
//
// rms_norm_grad ("_zero", "_rows", "_reduce"): x, w, dy, dx [rows, n] T;
//   dw [n] f32.
//   "_zero" clears dw. "_rows": one warp per row (rows strided over the
//   grid's warps), warp reductions of Σx² and Σ w·dy·x (no block barrier per
//   row). When n ≤ 1024 and n % 4 = 0 a lane keeps its 4-element groups c =
//   4·(lane + 32 j), j < 8, of x and dy in registers between the two passes
//   (as loaded: raw bf16, so that a warp holds two bf16 rows in flight) and
//   its dw contributions dy·x·r in registers across all its rows; otherwise
//   it re-reads the row (L1) and adds dw through shared-memory
//   atomics. Each block (at most 2 per multiprocessor) then stores its dw
//   partial row into the workspace [blocks, n]; "_reduce" sums them, 32
//   columns × 8 row lanes a block over a grid (n/32, 8), adding each block's
//   share into dw with fp32 atomics (8-way): no serial reduction over rows.
// silu_grad / sigmoid_grad (""): flat, may run in place (dx = dy).
// rope_grad (""): as kernels/rope.cuh with the transposed rotation.
// embedding_grad ("_clear", "_link", "_rows", "_heavy"): each dtable row is
//   written exactly once (no zero pass followed by read-modify-write atomics:
//   dtable is 8x the bytes of dy at the preset and would be written twice).
//   Workspace (i32): head [vocab], count [vocab], next [rows]: per id a
//   linked list of its token rows. "_link" pushes each row onto its id's
//   list (atomicExch on head) and counts it (bad ids go to the ErrorSlot and
//   are skipped); "_rows" is one warp per vocab row walking its list, summing
//   those rows of dy in fp32 registers and storing the row (zeros if unused).
//   Ids with more than EMB_HEAVY rows (a frequent token would serialise one
//   warp) are stored as zeros there and added by "_heavy" (one warp per token
//   row, fp32 reductions).
// grad_norm ("_zero", "_sumsq" per gradient, "_finalize"): Σg² per thread in
//   fp32 groups of 4, then double; one double atomicAdd per block into `acc`.
// adamw (""): flat; the step's scalars (clip factor, bias corrections) are
//   formed per thread in double from the device scalars, the update in fp32.
// came ("_zero", "_sq", "_vfac", "_u", "_m", "_sfac", "_p"): per matrix s of
//   `count` [rows, cols]: tiles of CAME_RB rows × all columns, threads owning
//   columns. "_sq" sums (g·c)² + eps1 per row (block reduction; the tile
//   owner updates row[s, r] in place) and per column (register partial per
//   tile, fp32 atomicAdd into workspace col_sum); "_vfac" (one block per
//   matrix) updates col from col_sum and forms mean(row); "_u" adds Σu² (u =
//   g·c·rsqrt(row/mean)·rsqrt(col)) into the double `ss`; "_m" recomputes u,
//   divides by the rms clip, updates m and sums the instability (u − m)² +
//   eps2 by rows (res_row updated in place) and columns (res_col_sum);
//   "_sfac" updates res_col and forms mean(res_row); "_p" applies the update.
// came_vector ("_zero", "_v", "_p"): "_v" updates v and adds Σu² into `ss`,
//   "_p" updates m and p.
// store_param (""): param = master rounded to T (round to nearest even).
// lm_head ("_count", "_rows", "_reduce"): "_count" is one block counting
//   labels != -100 over all rows; "_rows" is one block of 1024 threads per
//   chunk row. When V ≤ 32768 and V % 4 = 0 the row lives in registers (8
//   float4 a thread: one HBM read of the logits): exact max, Σexp, then
//   dlogits = (softmax − onehot)/count in T when dlogits is set. Otherwise an
//   online max / Σexp pass, then a second pass over the (L2-resident) row.
//   The plan picks "_rows_loss" (512 threads, the online pass only: a single
//   read of the logits, four blocks per multiprocessor) when dlogits is 0.
//   "_reduce" is one block summing row_loss in double.
// finite_check (""): flat scan in groups of 4; each thread's first
//   non-finite element goes to an atomicMin on the u64 slot (step << 40 |
//   index).
#pragma once

#include "kernels/common.cuh"
#include "kernels/rope.cuh"
#include "kernels/train_args.h"

namespace mm {
namespace k {
namespace ts {

// ---------------------------------------------------------------- helpers

// f4, ld4, st4 and aligned4: kernels/common.cuh.

__device__ __forceinline__ long long gtid() {
  return static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ long long gstride() {
  return static_cast<long long>(gridDim.x) * blockDim.x;
}

__device__ __forceinline__ double warpSumD(double v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
/// Sum over the block in double (blockDim.x a multiple of 32, ≤ 1024); the
/// result is valid in thread 0.
__device__ __forceinline__ double blockSumD(double v) {
  __shared__ double red[32];
  v = warpSumD(v);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0)
    red[warp] = v;
  __syncthreads();
  double s = 0;
  if (threadIdx.x == 0)
    for (int i = 0; i < static_cast<int>(blockDim.x >> 5); ++i)
      s += red[i];
  return s;
}
/// Sum over the block in fp32 (any blockDim.x multiple of 32); every thread
/// gets the result.
__device__ __forceinline__ float blockSumF(float v, float *red) {
  v = warpSum(v);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0)
    red[warp] = v;
  __syncthreads();
  float s = 0.f;
  for (int i = 0; i < static_cast<int>(blockDim.x >> 5); ++i)
    s += red[i];
  return s;
}

/// Adds v into dst[0..3] (f32, 16-byte aligned) in global memory.
__device__ __forceinline__ void red4(float *dst, float4 v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"l"(dst),
               "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w)
               : "memory");
#else
  atomicAdd(dst, v.x);
  atomicAdd(dst + 1, v.y);
  atomicAdd(dst + 2, v.z);
  atomicAdd(dst + 3, v.w);
#endif
}

/// cpu::clipFactor from the device scalar norm.
/// False when the global gradient norm is NaN or Inf: the optimizer kernels
/// then leave the parameters and their states untouched (the step is skipped,
/// so the executor can replay it with per-step NaN/Inf checks that name the
/// first bad tensor).
__device__ __forceinline__ bool normFinite(dptr norm) {
  return isfinite(*cptr<float>(norm));
}

__device__ __forceinline__ double clipFactorD(dptr norm, double maxNorm) {
  if (maxNorm <= 0)
    return 1.0;
  const double f = maxNorm / (static_cast<double>(*cptr<float>(norm)) + 1e-6);
  return f < 1.0 ? f : 1.0;
}

__device__ __forceinline__ bool nonFinite(float x) {
  return (__float_as_uint(x) & 0x7f800000u) == 0x7f800000u;
}

// ---------------------------------------------------------- rms_norm_grad

/// Groups of 4 a lane keeps in registers on the fast path (n ≤ 128·RMS_NV).
constexpr int RMS_NV = 8;

/// Four elements as loaded (float4 for f32, the raw 8 bytes for bf16: half
/// the registers, so that a warp can hold two bf16 rows in flight).
template <typename T> struct Raw4;
template <> struct Raw4<float> {
  typedef float4 type;
  static __device__ __forceinline__ float4 load(const float *p, long long i) {
    return ld4(p, i);
  }
  static __device__ __forceinline__ float4 unpack(float4 v) { return v; }
};
template <> struct Raw4<bf16> {
  typedef uint2 type;
  static __device__ __forceinline__ uint2 load(const bf16 *p, long long i) {
    return *reinterpret_cast<const uint2 *>(p + i);
  }
  static __device__ __forceinline__ float4 unpack(uint2 u) {
    return f4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u),
              __uint_as_float(u.y << 16), __uint_as_float(u.y & 0xffff0000u));
  }
};

/// The register path of "_rows": each warp takes ROWS rows at a time (rows
/// gw + W·q, W = warps in the grid), loads all their groups first, then
/// reduces and writes; dw contributions stay in registers until the end.
template <typename T, int ROWS>
__device__ __forceinline__ void rmsNormGradFast(const RmsNormGradArgs &a,
                                                float *sdw) {
  typedef Raw4<T> R;
  const long long n = a.n;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  const T *x = cptr<T>(a.x), *w = cptr<T>(a.w), *dy = cptr<T>(a.dy);
  T *dx = mptr<T>(a.dx);
  const float eps = static_cast<float>(a.eps);
  const float invN = 1.f / static_cast<float>(n);
  const long long W = static_cast<long long>(gridDim.x) * warps;
  float4 acc[RMS_NV];
#pragma unroll
  for (int j = 0; j < RMS_NV; ++j)
    acc[j] = f4(0.f, 0.f, 0.f, 0.f);
  for (long long r0 = static_cast<long long>(blockIdx.x) * warps + warp;
       r0 < a.rows; r0 += W * ROWS) {
    typename R::type xr[ROWS][RMS_NV], gr[ROWS][RMS_NV];
#pragma unroll
    for (int q = 0; q < ROWS; ++q) {
      const long long base = (r0 + W * q) * n;
#pragma unroll
      for (int j = 0; j < RMS_NV; ++j) {
        const long long c = 4ll * (lane + 32 * j);
        if (r0 + W * q < a.rows && c < n) {
          xr[q][j] = R::load(x, base + c);
          gr[q][j] = R::load(dy, base + c);
        }
      }
    }
    float ss[ROWS], proj[ROWS];
#pragma unroll
    for (int q = 0; q < ROWS; ++q) {
      ss[q] = 0.f;
      proj[q] = 0.f;
#pragma unroll
      for (int j = 0; j < RMS_NV; ++j) {
        const long long c = 4ll * (lane + 32 * j);
        if (r0 + W * q < a.rows && c < n) {
          const float4 wv = ld4(w, c);
          const float4 xv = R::unpack(xr[q][j]), gv = R::unpack(gr[q][j]);
          ss[q] += xv.x * xv.x + xv.y * xv.y + xv.z * xv.z + xv.w * xv.w;
          proj[q] += wv.x * gv.x * xv.x + wv.y * gv.y * xv.y +
                     wv.z * gv.z * xv.z + wv.w * gv.w * xv.w;
        }
      }
    }
#pragma unroll
    for (int q = 0; q < ROWS; ++q) {
      ss[q] = warpSum(ss[q]);
      proj[q] = warpSum(proj[q]);
    }
#pragma unroll
    for (int q = 0; q < ROWS; ++q) {
      const long long base = (r0 + W * q) * n;
      const float inv = rsqrtf(ss[q] * invN + eps);
      const float kk = inv * inv * inv * proj[q] * invN;
#pragma unroll
      for (int j = 0; j < RMS_NV; ++j) {
        const long long c = 4ll * (lane + 32 * j);
        if (r0 + W * q < a.rows && c < n) {
          const float4 wv = ld4(w, c);
          const float4 xv = R::unpack(xr[q][j]), gv = R::unpack(gr[q][j]);
          st4(dx, base + c,
              f4(inv * wv.x * gv.x - kk * xv.x, inv * wv.y * gv.y - kk * xv.y,
                 inv * wv.z * gv.z - kk * xv.z, inv * wv.w * gv.w - kk * xv.w));
          acc[j].x += gv.x * xv.x * inv;
          acc[j].y += gv.y * xv.y * inv;
          acc[j].z += gv.z * xv.z * inv;
          acc[j].w += gv.w * xv.w * inv;
        }
      }
    }
  }
#pragma unroll
  for (int j = 0; j < RMS_NV; ++j) {
    const long long c = 4ll * (lane + 32 * j);
    if (c < n) {
      atomicAdd(&sdw[c], acc[j].x);
      atomicAdd(&sdw[c + 1], acc[j].y);
      atomicAdd(&sdw[c + 2], acc[j].z);
      atomicAdd(&sdw[c + 3], acc[j].w);
    }
  }
}

template <typename T>
__device__ void rmsNormGradRows(const RmsNormGradArgs &a) {
  extern __shared__ float sdw[]; // [n] the block's dw partial
  const long long n = a.n;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  for (long long i = threadIdx.x; i < n; i += blockDim.x)
    sdw[i] = 0.f;
  __syncthreads();
  const T *x = cptr<T>(a.x), *w = cptr<T>(a.w), *dy = cptr<T>(a.dy);
  T *dx = mptr<T>(a.dx);
  const float eps = static_cast<float>(a.eps);
  const float invN = 1.f / static_cast<float>(n);
  const bool fast = n % 4 == 0 && n <= 128 * RMS_NV && aligned4<T>(a.x) &&
                    aligned4<T>(a.w) && aligned4<T>(a.dy) && aligned4<T>(a.dx);
  const long long step = static_cast<long long>(gridDim.x) * warps;
  if (fast) {
    rmsNormGradFast<T, sizeof(T) == 2 ? 2 : 1>(a, sdw);
  } else {
    for (long long r = static_cast<long long>(blockIdx.x) * warps + warp;
         r < a.rows; r += step) {
      const long long base = r * n;
      float ss = 0.f, proj = 0.f;
      for (long long c = lane; c < n; c += 32) {
        const float xv = ld(x, base + c), gv = ld(dy, base + c);
        ss += xv * xv;
        proj += ld(w, c) * gv * xv;
      }
      ss = warpSum(ss);
      proj = warpSum(proj);
      const float inv = rsqrtf(ss * invN + eps);
      const float kk = inv * inv * inv * proj * invN;
      for (long long c = lane; c < n; c += 32) {
        const float xv = ld(x, base + c), gv = ld(dy, base + c);
        st(dx, base + c, inv * ld(w, c) * gv - kk * xv);
        atomicAdd(&sdw[c], gv * xv * inv);
      }
    }
  }
  // The block's dw partial row goes to the workspace (plain stores).
  __syncthreads();
  float *part =
      mptr<float>(a.workspace) + static_cast<long long>(blockIdx.x) * n;
  for (long long i = threadIdx.x; i < n; i += blockDim.x)
    part[i] = sdw[i];
}

/// Row groups of "_reduce" (gridDim.y): each block sums a 1/RMS_RG share of
/// the partial rows for 32 columns and adds it into dw (RMS_RG-way atomics).
constexpr int RMS_RG = 8;

/// "_reduce": blocks of 32 columns × 8 row lanes; thread (tx, ty) of block
/// (bx, by) sums partial rows b ≡ 8·by + ty (mod 8·RMS_RG), 4 loads at a
/// time; shared memory folds the 8 row lanes.
__device__ __forceinline__ void rmsNormGradReduce(const RmsNormGradArgs &a) {
  __shared__ float red[8][33];
  const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
  const long long c = static_cast<long long>(blockIdx.x) * 32 + tx;
  const float *part = cptr<float>(a.workspace);
  const long long n = a.n, stride = 8ll * gridDim.y;
  float s = 0.f;
  if (c < n) {
    long long b = 8ll * blockIdx.y + ty;
    for (; b + 3 * stride < a.blocks; b += 4 * stride) {
      const float v0 = part[b * n + c], v1 = part[(b + stride) * n + c];
      const float v2 = part[(b + 2 * stride) * n + c],
                  v3 = part[(b + 3 * stride) * n + c];
      s += (v0 + v1) + (v2 + v3);
    }
    for (; b < a.blocks; b += stride)
      s += part[b * n + c];
  }
  red[ty][tx] = s;
  __syncthreads();
  if (ty == 0 && c < n) {
    for (int i = 1; i < 8; ++i)
      s += red[i][tx];
    atomicAdd(mptr<float>(a.dw) + c, s);
  }
}

// ------------------------------------------------- silu_grad, sigmoid_grad

template <bool SILU>
__device__ __forceinline__ float actGradF(float x, float g) {
  const float s = 1.f / (1.f + expf(-x));
  return SILU ? g * s * (1.f + x * (1.f - s)) : g * s * (1.f - s);
}

template <typename T, bool SILU> __device__ void actGrad(const ActGradArgs &a) {
  const T *x = cptr<T>(a.x), *dy = cptr<T>(a.dy);
  T *dx = mptr<T>(a.dx);
  const bool vec = aligned4<T>(a.x) && aligned4<T>(a.dy) && aligned4<T>(a.dx);
  const long long n4 = vec ? a.n / 4 : 0;
  for (long long v = gtid(); v < n4; v += gstride()) {
    const float4 xv = ld4(x, 4 * v), gv = ld4(dy, 4 * v);
    st4(dx, 4 * v,
        f4(actGradF<SILU>(xv.x, gv.x), actGradF<SILU>(xv.y, gv.y),
           actGradF<SILU>(xv.z, gv.z), actGradF<SILU>(xv.w, gv.w)));
  }
  for (long long i = 4 * n4 + gtid(); i < a.n; i += gstride())
    st(dx, i, actGradF<SILU>(ld(x, i), ld(dy, i)));
}

/// GateGradArgs (see there): the two products and sigmoid_grad of an output
/// gate's backward in one pass, the dy·a product kept in fp32.
template <typename T> __device__ void gateGrad(const GateGradArgs &p) {
  const T *dy = cptr<T>(p.dy), *a = cptr<T>(p.a), *b = cptr<T>(p.b),
          *x = cptr<T>(p.x);
  T *w = mptr<T>(p.w), *v = mptr<T>(p.v);
  const bool vec = aligned4<T>(p.dy) && aligned4<T>(p.a) && aligned4<T>(p.b) &&
                   aligned4<T>(p.x) && aligned4<T>(p.w) && aligned4<T>(p.v);
  const long long n4 = vec ? p.n / 4 : 0;
  for (long long i = gtid(); i < n4; i += gstride()) {
    const float4 g = ld4(dy, 4 * i), av = ld4(a, 4 * i), bv = ld4(b, 4 * i),
                 xv = ld4(x, 4 * i);
    st4(w, 4 * i,
        f4(actGradF<false>(xv.x, g.x * av.x), actGradF<false>(xv.y, g.y * av.y),
           actGradF<false>(xv.z, g.z * av.z),
           actGradF<false>(xv.w, g.w * av.w)));
    st4(v, 4 * i, f4(g.x * bv.x, g.y * bv.y, g.z * bv.z, g.w * bv.w));
  }
  for (long long i = 4 * n4 + gtid(); i < p.n; i += gstride()) {
    const float g = ld(dy, i);
    st(w, i, actGradF<false>(ld(x, i), g * ld(a, i)));
    st(v, i, g * ld(b, i));
  }
}

// -------------------------------------------------------------- rope_grad

/// dx[i] = dy[i]·cos + dy[i+R/2]·sin, dx[i+R/2] = dy[i+R/2]·cos − dy[i]·sin:
/// the inverse rotation of kernels/rope.cuh (ropeRotate), same thread layout
/// and double-precision angle.
template <typename T> __device__ void ropeGrad(const RopeGradArgs &p) {
  ropeRotate<T, true>(p);
}

// --------------------------------------------------------- embedding_grad

/// Zeroes n floats at p (grid-stride, float4 when aligned).
__device__ __forceinline__ void zeroF32(dptr p, long long n) {
  float *d = mptr<float>(p);
  const long long n4 = aligned4<float>(p) ? n / 4 : 0;
  for (long long v = gtid(); v < n4; v += gstride())
    st4(d, 4 * v, f4(0.f, 0.f, 0.f, 0.f));
  for (long long i = 4 * n4 + gtid(); i < n; i += gstride())
    d[i] = 0.f;
}

/// Token rows an id may have and still be summed by one warp in "_rows";
/// the rows of more frequent ids are added by "_heavy" with atomics.
constexpr int EMB_HEAVY = 16;

/// "_clear": head[v] = -1, count[v] = 0.
__device__ __forceinline__ void embeddingGradClear(const EmbeddingGradArgs &a) {
  int *head = mptr<int>(a.head), *count = mptr<int>(a.count);
  for (long long v = gtid(); v < a.vocab; v += gstride()) {
    head[v] = -1;
    count[v] = 0;
  }
}

/// "_link": pushes each valid row onto its id's list (next[r] = old head)
/// and counts it; a bad id is reported and skipped.
__device__ __forceinline__ void embeddingGradLink(const EmbeddingGradArgs &a) {
  const long long r = gtid();
  if (r >= a.rows)
    return;
  const long long id = cptr<int>(a.ids)[r];
  if (id < 0 || id >= a.vocab) {
    reportError(a.error, r, id, kErrorTokenId);
    return;
  }
  atomicAdd(mptr<int>(a.count) + id, 1);
  mptr<int>(a.next)[r] =
      atomicExch(mptr<int>(a.head) + id, static_cast<int>(r));
}

/// "_rows": one warp per vocab row v writes dtable[v] once: the sum of the
/// rows on its list, or zeros (no rows, or more than EMB_HEAVY: "_heavy"
/// adds those).
template <typename T>
__device__ void embeddingGradRows(const EmbeddingGradArgs &a) {
  constexpr int NV = 8;
  const int lane = threadIdx.x & 31;
  const long long v = gtid() >> 5;
  if (v >= a.vocab)
    return;
  const int *next = cptr<int>(a.next);
  int cnt = cptr<int>(a.count)[v];
  const int first = cnt > 0 && cnt <= EMB_HEAVY ? cptr<int>(a.head)[v] : -1;
  const long long H = a.hidden;
  const T *dy = cptr<T>(a.dy);
  float *dst = mptr<float>(a.dtable) + v * H;
  if (H % 4 == 0 && aligned4<T>(a.dy) && aligned4<float>(a.dtable)) {
    for (long long c0 = 0; c0 < H; c0 += 128 * NV) {
      float4 acc[NV];
#pragma unroll
      for (int j = 0; j < NV; ++j)
        acc[j] = f4(0.f, 0.f, 0.f, 0.f);
      for (int r = first; r >= 0; r = next[r]) {
        const long long row = static_cast<long long>(r) * H;
#pragma unroll
        for (int j = 0; j < NV; ++j) {
          const long long c = c0 + 4 * (lane + 32 * j);
          if (c < H) {
            const float4 x = ld4(dy, row + c);
            acc[j].x += x.x;
            acc[j].y += x.y;
            acc[j].z += x.z;
            acc[j].w += x.w;
          }
        }
      }
#pragma unroll
      for (int j = 0; j < NV; ++j) {
        const long long c = c0 + 4 * (lane + 32 * j);
        if (c < H)
          st4(dst, c, acc[j]);
      }
    }
  } else {
    for (long long c = lane; c < H; c += 32) {
      float acc = 0.f;
      for (int r = first; r >= 0; r = next[r])
        acc += ld(dy, static_cast<long long>(r) * H + c);
      dst[c] = acc;
    }
  }
}

/// "_heavy": one warp per token row whose id has more than EMB_HEAVY rows
/// adds dy[r] into dtable[id] (fp32 reductions, red.v4.f32 on sm_90).
template <typename T>
__device__ void embeddingGradHeavy(const EmbeddingGradArgs &a) {
  const int lane = threadIdx.x & 31;
  const long long r = gtid() >> 5;
  if (r >= a.rows)
    return;
  const long long id = cptr<int>(a.ids)[r];
  if (id < 0 || id >= a.vocab)
    return;
  if (cptr<int>(a.count)[id] <= EMB_HEAVY)
    return;
  const long long H = a.hidden;
  const T *src = cptr<T>(a.dy) + r * H;
  float *dst = mptr<float>(a.dtable) + id * H;
  if (H % 4 == 0 && aligned4<T>(a.dy) && aligned4<float>(a.dtable)) {
    for (long long c = 4 * lane; c < H; c += 128)
      red4(dst + c, ld4(src, c));
  } else {
    for (long long c = lane; c < H; c += 32)
      atomicAdd(dst + c, ld(src, c));
  }
}

// -------------------------------------------------------------- grad_norm

__device__ __forceinline__ void gradNormSumsq(const GradNormArgs &a) {
  const float *g = cptr<float>(a.g);
  double s = 0;
  const long long n4 = aligned4<float>(a.g) ? a.n / 4 : 0;
  for (long long v = gtid(); v < n4; v += gstride()) {
    const float4 x = ld4(g, 4 * v);
    s += static_cast<double>(x.x * x.x + x.y * x.y) +
         static_cast<double>(x.z * x.z + x.w * x.w);
  }
  for (long long i = 4 * n4 + gtid(); i < a.n; i += gstride())
    s += static_cast<double>(g[i]) * g[i];
  s = blockSumD(s);
  if (threadIdx.x == 0)
    atomicAdd(mptr<double>(a.acc), s);
}

/// Multi-tensor form: one launch over a table of gradients (NormTensor).
__device__ __forceinline__ void gradNormSumsqMulti(const GradNormArgs &a) {
  const NormTensor *tab = cptr<NormTensor>(a.table);
  const long long b = blockIdx.x;
  int lo = 0, hi = static_cast<int>(a.count) - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (tab[mid].first <= b)
      lo = mid;
    else
      hi = mid - 1;
  }
  const NormTensor t = tab[lo];
  const long long c0 = (b - t.first) * gradNormChunk();
  const long long c1 = c0 + gradNormChunk() < t.n ? c0 + gradNormChunk() : t.n;
  const float *g = cptr<float>(t.g);
  double s = 0;
  // Gradients are 256-byte aligned and c0 a multiple of 4.
  const long long v1 = c0 + (c1 > c0 ? (c1 - c0) / 4 * 4 : 0);
  for (long long i = c0 + 4 * threadIdx.x; i < v1; i += 4 * blockDim.x) {
    const float4 x = ld4(g, i);
    s += static_cast<double>(x.x * x.x + x.y * x.y) +
         static_cast<double>(x.z * x.z + x.w * x.w);
  }
  for (long long i = v1 + threadIdx.x; i < c1; i += blockDim.x)
    s += static_cast<double>(g[i]) * g[i];
  s = blockSumD(s);
  if (threadIdx.x == 0)
    atomicAdd(mptr<double>(a.acc), s);
}

// ------------------------------------------------------------------ adamw

struct AdamStep {
  float scale, b1, b2, omb1, omb2, invSqrtBc2, eps, stepSize, decay;
};

__device__ __forceinline__ AdamStep adamStep(const AdamWArgs &a) {
  const double lr = *cptr<float>(a.lr), step = *cptr<float>(a.step);
  const double bc1 = 1.0 - pow(a.beta1, step), bc2 = 1.0 - pow(a.beta2, step);
  AdamStep s;
  s.scale = static_cast<float>(clipFactorD(a.norm, a.max_norm));
  s.b1 = static_cast<float>(a.beta1);
  s.b2 = static_cast<float>(a.beta2);
  s.omb1 = static_cast<float>(1.0 - a.beta1);
  s.omb2 = static_cast<float>(1.0 - a.beta2);
  s.invSqrtBc2 = static_cast<float>(1.0 / sqrt(bc2));
  s.eps = static_cast<float>(a.eps);
  s.stepSize = static_cast<float>(lr / bc1);
  s.decay = static_cast<float>(1.0 - lr * a.weight_decay);
  return s;
}

/// One element: updates m, v and returns the new p.
__device__ __forceinline__ float adamOne(const AdamStep &s, float p, float gr,
                                         float &m, float &v) {
  const float g = gr * s.scale;
  m = s.b1 * m + s.omb1 * g;
  v = s.b2 * v + s.omb2 * g * g;
  const float denom = sqrtf(v) * s.invSqrtBc2 + s.eps;
  return p * s.decay - s.stepSize * m / denom;
}

__device__ __forceinline__ void adamw(const AdamWArgs &a) {
  const AdamStep s = adamStep(a);
  float *p = mptr<float>(a.p), *m = mptr<float>(a.m), *v = mptr<float>(a.v);
  const float *g = cptr<float>(a.g);
  bf16 *store = mptr<bf16>(a.store);
  const bool vec = aligned4<float>(a.p) && aligned4<float>(a.g) &&
                   aligned4<float>(a.m) && aligned4<float>(a.v) &&
                   (a.store & 7ull) == 0;
  const long long n4 = vec ? a.n / 4 : 0;
  for (long long i = gtid(); i < n4; i += gstride()) {
    float4 pv = ld4(p, 4 * i), mv = ld4(m, 4 * i), vv = ld4(v, 4 * i);
    const float4 gv = ld4(g, 4 * i);
    pv.x = adamOne(s, pv.x, gv.x, mv.x, vv.x);
    pv.y = adamOne(s, pv.y, gv.y, mv.y, vv.y);
    pv.z = adamOne(s, pv.z, gv.z, mv.z, vv.z);
    pv.w = adamOne(s, pv.w, gv.w, mv.w, vv.w);
    st4(p, 4 * i, pv);
    st4(m, 4 * i, mv);
    st4(v, 4 * i, vv);
    if (store)
      reinterpret_cast<uint2 *>(store)[i] =
          make_uint2(packBf16(pv.x, pv.y), packBf16(pv.z, pv.w));
  }
  for (long long i = 4 * n4 + gtid(); i < a.n; i += gstride()) {
    float mi = m[i], vi = v[i];
    p[i] = adamOne(s, p[i], g[i], mi, vi);
    m[i] = mi;
    v[i] = vi;
    if (store)
      store[i] = fromF32<bf16>(p[i]);
  }
}

/// Multi-tensor adamw: one launch over every tensor of a table (a block per
/// adamWChunk() elements of a tensor), the same arithmetic as adamw.
__device__ __forceinline__ void adamwMulti(const AdamWArgs &a) {
  const AdamWTensor *tab = cptr<AdamWTensor>(a.table);
  const long long b = blockIdx.x;
  int lo = 0, hi = static_cast<int>(a.count) - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (tab[mid].first <= b)
      lo = mid;
    else
      hi = mid - 1;
  }
  const AdamWTensor t = tab[lo];
  const long long c0 = (b - t.first) * adamWChunk();
  const long long c1 = c0 + adamWChunk() < t.n ? c0 + adamWChunk() : t.n;
  if (c0 >= c1)
    return;
  const AdamStep s = adamStep(a);
  float *p = mptr<float>(t.p), *m = mptr<float>(t.m), *v = mptr<float>(t.v);
  const float *g = cptr<float>(t.g);
  bf16 *store = mptr<bf16>(t.store);
  // Buffers are 256-byte aligned and c0 a multiple of 4: float4 groups up to
  // the last whole one, then single elements.
  const long long v1 = c0 + (c1 - c0) / 4 * 4;
  for (long long i = c0 + 4 * threadIdx.x; i < v1; i += 4 * blockDim.x) {
    float4 pv = ld4(p, i), mv = ld4(m, i), vv = ld4(v, i);
    const float4 gv = ld4(g, i);
    pv.x = adamOne(s, pv.x, gv.x, mv.x, vv.x);
    pv.y = adamOne(s, pv.y, gv.y, mv.y, vv.y);
    pv.z = adamOne(s, pv.z, gv.z, mv.z, vv.z);
    pv.w = adamOne(s, pv.w, gv.w, mv.w, vv.w);
    st4(p, i, pv);
    st4(m, i, mv);
    st4(v, i, vv);
    if (store)
      reinterpret_cast<uint2 *>(store)[i / 4] =
          make_uint2(packBf16(pv.x, pv.y), packBf16(pv.z, pv.w));
  }
  for (long long i = v1 + threadIdx.x; i < c1; i += blockDim.x) {
    float mi = m[i], vi = v[i];
    p[i] = adamOne(s, p[i], g[i], mi, vi);
    m[i] = mi;
    v[i] = vi;
    if (store)
      store[i] = fromF32<bf16>(p[i]);
  }
}

// ------------------------------------------------------------------- came

/// Rows per tile of the factored CAME passes.
constexpr int CAME_RB = 8;

/// The tile of this block: matrix s, rows [r0, r0 + nr).
struct CameTile {
  long long s, r0, nr;
};
__device__ __forceinline__ CameTile cameTile(const CameArgs &a) {
  const long long tiles = (a.rows + CAME_RB - 1) / CAME_RB;
  CameTile t;
  t.s = blockIdx.x / tiles;
  t.r0 = (blockIdx.x % tiles) * CAME_RB;
  t.nr = a.rows - t.r0 < CAME_RB ? a.rows - t.r0 : CAME_RB;
  return t;
}

/// Row sums of a tile (racc, per thread) reduced over the block into
/// out[r] (valid in every thread).
__device__ __forceinline__ void cameRowSums(float (&racc)[CAME_RB],
                                            float (&out)[CAME_RB]) {
  __shared__ float red[32][CAME_RB];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
  for (int r = 0; r < CAME_RB; ++r) {
    const float v = warpSum(racc[r]);
    if (lane == 0)
      red[warp][r] = v;
  }
  __syncthreads();
#pragma unroll
  for (int r = 0; r < CAME_RB; ++r) {
    float s = 0.f;
    for (int i = 0; i < static_cast<int>(blockDim.x >> 5); ++i)
      s += red[i][r];
    out[r] = s;
  }
}

/// The tile's row sums (racc) reduced over the block, then thread r < nr
/// folds row r's mean over the C columns into the slot's row statistic:
/// rows[s·R + r0 + r] = beta·that + (1 − beta)·sum / C.
__device__ __forceinline__ void cameRowEma(float (&racc)[CAME_RB],
                                           const CameTile &t, float *rows,
                                           long long R, double beta,
                                           long long C) {
  float rs[CAME_RB];
  cameRowSums(racc, rs);
  if (threadIdx.x < t.nr) {
    float *row = rows + t.s * R + t.r0 + threadIdx.x;
    float sum = 0.f;
#pragma unroll
    for (int r = 0; r < CAME_RB; ++r)
      if (r == static_cast<int>(threadIdx.x))
        sum = rs[r];
    *row = static_cast<float>(beta * *row +
                              (1.0 - beta) * sum / static_cast<double>(C));
  }
}


/// "_sq": row and column sums of (g·scale)² + eps1; updates row in place.
__device__ __forceinline__ void cameSq(const CameArgs &a) {
  const CameTile t = cameTile(a);
  const float scale = static_cast<float>(clipFactorD(a.norm, a.max_norm));
  const float eps1 = static_cast<float>(a.eps1);
  const long long C = a.cols;
  const float *g = cptr<float>(a.g) + (t.s * a.rows + t.r0) * C;
  float *colSum = mptr<float>(a.col_sum) + t.s * C;
  float racc[CAME_RB];
#pragma unroll
  for (int r = 0; r < CAME_RB; ++r)
    racc[r] = 0.f;
  for (long long c = threadIdx.x; c < C; c += blockDim.x) {
    float cacc = 0.f;
#pragma unroll
    for (int r = 0; r < CAME_RB; ++r)
      if (r < t.nr) {
        const float gv = g[r * C + c] * scale;
        const float sq = gv * gv + eps1;
        racc[r] += sq;
        cacc += sq;
      }
    atomicAdd(colSum + c, cacc);
  }
  cameRowEma(racc, t, mptr<float>(a.row), a.rows, a.beta2, C);
}

/// "_vfac" / "_sfac": one block per matrix: vec[c] = beta·vec[c] + (1 −
/// beta)·sum[c]/rows, and mean[s] = mean of rowv[s, :].
__device__ __forceinline__ void cameFactors(const CameArgs &a, dptr vecP,
                                            dptr sumP, dptr rowP, dptr meanP,
                                            double beta) {
  __shared__ float red[32];
  const long long s = blockIdx.x;
  float *vec = mptr<float>(vecP) + s * a.cols;
  const float *sum = cptr<float>(sumP) + s * a.cols;
  for (long long c = threadIdx.x; c < a.cols; c += blockDim.x)
    vec[c] = static_cast<float>(
        beta * vec[c] + (1.0 - beta) * sum[c] / static_cast<double>(a.rows));
  const float *row = cptr<float>(rowP) + s * a.rows;
  float acc = 0.f;
  for (long long r = threadIdx.x; r < a.rows; r += blockDim.x)
    acc += row[r];
  acc = blockSumF(acc, red);
  if (threadIdx.x == 0)
    mptr<float>(meanP)[s] = acc / static_cast<float>(a.rows);
}

/// rsqrt(row[r] / mean) for the CAME_RB rows of a tile (0 past the end).
__device__ __forceinline__ void cameRowFactors(const CameArgs &a,
                                               const CameTile &t, dptr rowP,
                                               dptr meanP,
                                               float (&f)[CAME_RB]) {
  const float mean = cptr<float>(meanP)[t.s];
  const float *row = cptr<float>(rowP) + t.s * a.rows + t.r0;
#pragma unroll
  for (int r = 0; r < CAME_RB; ++r)
    f[r] = r < t.nr ? rsqrtf(row[r] / mean) : 0.f;
}

/// "_u": ss += Σ u², u = g·scale·rowFactor·rsqrt(col).
__device__ __forceinline__ void cameU(const CameArgs &a) {
  const CameTile t = cameTile(a);
  const float scale = static_cast<float>(clipFactorD(a.norm, a.max_norm));
  float rf[CAME_RB];
  cameRowFactors(a, t, a.row, a.row_mean, rf);
  const long long C = a.cols;
  const float *g = cptr<float>(a.g) + (t.s * a.rows + t.r0) * C;
  const float *col = cptr<float>(a.col) + t.s * C;
  double acc = 0;
  for (long long c = threadIdx.x; c < C; c += blockDim.x) {
    const float cf = rsqrtf(col[c]) * scale;
    float part = 0.f;
#pragma unroll
    for (int r = 0; r < CAME_RB; ++r)
      if (r < t.nr) {
        const float u = rf[r] * cf * g[r * C + c];
        part += u * u;
      }
    acc += part;
  }
  acc = blockSumD(acc);
  if (threadIdx.x == 0)
    atomicAdd(mptr<double>(a.ss), acc);
}

/// The rms clip divisor max(1, sqrt(ss/n)/clip_threshold).
__device__ __forceinline__ float cameClip(dptr ss, long long n,
                                          double threshold) {
  const double c = sqrt(*cptr<double>(ss) / static_cast<double>(n)) / threshold;
  return static_cast<float>(c > 1.0 ? c : 1.0);
}

/// "_m": u /= clip; m update; instability sums (res_row in place, columns
/// into res_col_sum).
__device__ __forceinline__ void cameM(const CameArgs &a) {
  const CameTile t = cameTile(a);
  const float scale = static_cast<float>(clipFactorD(a.norm, a.max_norm));
  const float invClip =
      1.f / cameClip(a.ss, a.count * a.rows * a.cols, a.clip_threshold);
  const float b1 = static_cast<float>(a.beta1),
              omb1 = static_cast<float>(1.0 - a.beta1),
              eps2 = static_cast<float>(a.eps2);
  float rf[CAME_RB];
  cameRowFactors(a, t, a.row, a.row_mean, rf);
  const long long C = a.cols;
  const long long off = (t.s * a.rows + t.r0) * C;
  const float *g = cptr<float>(a.g) + off;
  float *m = mptr<float>(a.m) + off;
  const float *col = cptr<float>(a.col) + t.s * C;
  float *colSum = mptr<float>(a.res_col_sum) + t.s * C;
  float racc[CAME_RB];
#pragma unroll
  for (int r = 0; r < CAME_RB; ++r)
    racc[r] = 0.f;
  for (long long c = threadIdx.x; c < C; c += blockDim.x) {
    const float cf = rsqrtf(col[c]) * scale;
    float cacc = 0.f;
#pragma unroll
    for (int r = 0; r < CAME_RB; ++r)
      if (r < t.nr) {
        const float u = rf[r] * cf * g[r * C + c] * invClip;
        const float mi = b1 * m[r * C + c] + omb1 * u;
        m[r * C + c] = mi;
        const float d = u - mi;
        const float res = d * d + eps2;
        racc[r] += res;
        cacc += res;
      }
    atomicAdd(colSum + c, cacc);
  }
  cameRowEma(racc, t, mptr<float>(a.res_row), a.rows, a.beta3, C);
}

/// "_p": p = p·(1 − lr·wd) − lr·rsqrt(res_row/mean)·rsqrt(res_col)·m.
__device__ __forceinline__ void cameP(const CameArgs &a) {
  const CameTile t = cameTile(a);
  const double lrD = *cptr<float>(a.lr);
  const float lr = static_cast<float>(lrD);
  const float decay = static_cast<float>(1.0 - lrD * a.weight_decay);
  float rf[CAME_RB];
  cameRowFactors(a, t, a.res_row, a.res_row_mean, rf);
  const long long C = a.cols;
  const long long off = (t.s * a.rows + t.r0) * C;
  const float *m = cptr<float>(a.m) + off;
  float *p = mptr<float>(a.p) + off;
  const float *col = cptr<float>(a.res_col) + t.s * C;
  for (long long c = threadIdx.x; c < C; c += blockDim.x) {
    const float cf = rsqrtf(col[c]);
#pragma unroll
    for (int r = 0; r < CAME_RB; ++r)
      if (r < t.nr)
        p[r * C + c] = p[r * C + c] * decay - lr * (rf[r] * cf * m[r * C + c]);
  }
}

/// "_zero": col_sum, res_col_sum (count·cols floats each) and ss.
__device__ __forceinline__ void cameZero(const CameArgs &a) {
  zeroF32(a.col_sum, a.count * a.cols);
  zeroF32(a.res_col_sum, a.count * a.cols);
  if (gtid() == 0)
    *mptr<double>(a.ss) = 0.0;
}

// ------------------------------------------------------------ came_vector

__device__ __forceinline__ void cameVectorV(const CameVectorArgs &a) {
  const float scale = static_cast<float>(clipFactorD(a.norm, a.max_norm));
  const float b2 = static_cast<float>(a.beta2),
              omb2 = static_cast<float>(1.0 - a.beta2),
              eps1 = static_cast<float>(a.eps1);
  const float *g = cptr<float>(a.g);
  float *v = mptr<float>(a.v);
  double acc = 0;
  for (long long i = gtid(); i < a.n; i += gstride()) {
    const float gv = g[i] * scale;
    const float vi = b2 * v[i] + omb2 * (gv * gv + eps1);
    v[i] = vi;
    acc += gv * gv / vi;
  }
  acc = blockSumD(acc);
  if (threadIdx.x == 0)
    atomicAdd(mptr<double>(a.workspace), acc);
}

__device__ __forceinline__ void cameVectorP(const CameVectorArgs &a) {
  const float scale = static_cast<float>(clipFactorD(a.norm, a.max_norm));
  const double lrD = *cptr<float>(a.lr);
  const float lr = static_cast<float>(lrD);
  const float decay = static_cast<float>(1.0 - lrD * a.weight_decay);
  const float invClip = 1.f / cameClip(a.workspace, a.n, a.clip_threshold);
  const float b1 = static_cast<float>(a.beta1),
              omb1 = static_cast<float>(1.0 - a.beta1);
  const float *g = cptr<float>(a.g), *v = cptr<float>(a.v);
  float *m = mptr<float>(a.m), *p = mptr<float>(a.p);
  for (long long i = gtid(); i < a.n; i += gstride()) {
    const float u = g[i] * scale * rsqrtf(v[i]) * invClip;
    const float mi = b1 * m[i] + omb1 * u;
    m[i] = mi;
    p[i] = p[i] * decay - lr * mi;
  }
}

// ------------------------------------------------------------ store_param

template <typename T> __device__ void storeParam(const StoreParamArgs &a) {
  const float *src = cptr<float>(a.master);
  T *dst = mptr<T>(a.param);
  const long long n4 =
      aligned4<float>(a.master) && aligned4<T>(a.param) ? a.n / 4 : 0;
  for (long long v = gtid(); v < n4; v += gstride())
    st4(dst, 4 * v, ld4(src, 4 * v));
  for (long long i = 4 * n4 + gtid(); i < a.n; i += gstride())
    st(dst, i, src[i]);
}

// ---------------------------------------------------------------- lm_head

__device__ __forceinline__ void lmHeadCount(const LmHeadArgs &a) {
  __shared__ float red[32];
  const int *labels = cptr<int>(a.labels);
  float c = 0.f;
  for (long long r = threadIdx.x; r < a.total_rows; r += blockDim.x)
    c += labels[r] != -100 ? 1.f : 0.f;
  c = blockSumF(c, red);
  if (threadIdx.x == 0)
    *mptr<float>(a.count) = c;
}

/// Merges (m2, s2) into the running max / Σexp(· − max) pair (m, s).
__device__ __forceinline__ void lseMerge(float &m, float &s, float m2,
                                         float s2) {
  const float mx = fmaxf(m, m2);
  if (mx == -infinity())
    return;
  s = s * expf(m - mx) + s2 * expf(m2 - mx);
  m = mx;
}

/// float4 groups per thread of the register path of "_rows" (V ≤
/// 4·LM_NV·threads: 32768 at 1024 threads).
constexpr int LM_NV = 8;

template <typename T, bool REG>
__device__ void lmHeadRows(const LmHeadArgs &a) {
  __shared__ float redM[32], redS[32];
  __shared__ float lseS;
  const long long r = blockIdx.x;
  if (r >= a.rows)
    return;
  const long long V = a.vocab;
  const long long grow = a.row0 + r;
  const int label = cptr<int>(a.labels)[grow];
  const bool ignored = label == -100;
  const bool bad = !ignored && (label < 0 || label >= V);
  T *dl = a.dlogits ? mptr<T>(a.dlogits) + r * V : nullptr;
  const bool vec = V % 4 == 0 && aligned4<float>(a.logits) &&
                   (!dl || aligned4<T>(a.dlogits));
  if (ignored || bad) {
    if (threadIdx.x == 0) {
      mptr<float>(a.row_loss)[grow] = 0.f;
      if (bad)
        reportError(a.error, grow, label, kErrorLabel);
    }
    if (dl) {
      if (vec)
        for (long long c = 4 * threadIdx.x; c < V; c += 4 * blockDim.x)
          st4(dl, c, f4(0.f, 0.f, 0.f, 0.f));
      else
        for (long long c = threadIdx.x; c < V; c += blockDim.x)
          st(dl, c, 0.f);
    }
    return;
  }
  const float *z = cptr<float>(a.logits) + r * V;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const float cnt = *cptr<float>(a.count);
  const float inv = cnt > 0.f ? 1.f / cnt : 0.f;
  if (REG && vec && V <= 4ll * LM_NV * blockDim.x) {
    // Register path: the whole row in registers (one HBM read), exact max,
    // then Σexp, then dlogits from the registers.
    float4 v[LM_NV];
    float m = -infinity();
#pragma unroll
    for (int j = 0; j < LM_NV; ++j) {
      const long long c =
          4ll * (threadIdx.x + static_cast<long long>(j) * blockDim.x);
      v[j] = c < V ? ld4(z, c)
                   : f4(-infinity(), -infinity(), -infinity(), -infinity());
      m = fmaxf(m, fmaxf(fmaxf(v[j].x, v[j].y), fmaxf(v[j].z, v[j].w)));
    }
    m = warpMax(m);
    if (lane == 0)
      redM[warp] = m;
    __syncthreads();
    m = redM[0];
    for (int i = 1; i < static_cast<int>(blockDim.x >> 5); ++i)
      m = fmaxf(m, redM[i]);
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < LM_NV; ++j)
      s += expf(v[j].x - m) + expf(v[j].y - m) + expf(v[j].z - m) +
           expf(v[j].w - m);
    s = warpSum(s);
    if (lane == 0)
      redS[warp] = s;
    __syncthreads();
    s = 0.f;
    for (int i = 0; i < static_cast<int>(blockDim.x >> 5); ++i)
      s += redS[i];
    const float lse = m + logf(s);
    if (threadIdx.x == 0)
      mptr<float>(a.row_loss)[grow] = lse - z[label];
    if (!dl)
      return;
#pragma unroll
    for (int j = 0; j < LM_NV; ++j) {
      const long long c =
          4ll * (threadIdx.x + static_cast<long long>(j) * blockDim.x);
      if (c < V) {
        float4 o = f4(expf(v[j].x - lse) * inv, expf(v[j].y - lse) * inv,
                      expf(v[j].z - lse) * inv, expf(v[j].w - lse) * inv);
        if (label >= c && label < c + 4) {
          const int k = static_cast<int>(label - c);
          if (k == 0)
            o.x -= inv;
          else if (k == 1)
            o.y -= inv;
          else if (k == 2)
            o.z -= inv;
          else
            o.w -= inv;
        }
        st4(dl, c, o);
      }
    }
    return;
  }
  float m = -infinity(), s = 0.f;
  if (vec) {
#pragma unroll 4
    for (long long c = 4 * threadIdx.x; c < V; c += 4 * blockDim.x) {
      const float4 v = ld4(z, c);
      const float mx = fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w));
      lseMerge(m, s, mx,
               expf(v.x - mx) + expf(v.y - mx) + expf(v.z - mx) +
                   expf(v.w - mx));
    }
  } else {
    for (long long c = threadIdx.x; c < V; c += blockDim.x)
      lseMerge(m, s, z[c], 1.f);
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
    const float s2 = __shfl_xor_sync(0xffffffffu, s, o);
    lseMerge(m, s, m2, s2);
  }
  if (lane == 0) {
    redM[warp] = m;
    redS[warp] = s;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float mm = redM[0], sm = redS[0];
    for (int i = 1; i < static_cast<int>(blockDim.x >> 5); ++i)
      lseMerge(mm, sm, redM[i], redS[i]);
    const float lse = mm + logf(sm);
    lseS = lse;
    mptr<float>(a.row_loss)[grow] = lse - z[label];
  }
  __syncthreads();
  if (!dl)
    return;
  const float lse = lseS;
  if (vec) {
#pragma unroll 4
    for (long long c = 4 * threadIdx.x; c < V; c += 4 * blockDim.x) {
      const float4 v = ld4(z, c);
      float4 o = f4(expf(v.x - lse) * inv, expf(v.y - lse) * inv,
                    expf(v.z - lse) * inv, expf(v.w - lse) * inv);
      if (label >= c && label < c + 4) {
        const int k = static_cast<int>(label - c);
        if (k == 0)
          o.x -= inv;
        else if (k == 1)
          o.y -= inv;
        else if (k == 2)
          o.z -= inv;
        else
          o.w -= inv;
      }
      st4(dl, c, o);
    }
  } else {
    for (long long c = threadIdx.x; c < V; c += blockDim.x)
      st(dl, c, expf(z[c] - lse) * inv - (c == label ? inv : 0.f));
  }
}

__device__ __forceinline__ void lmHeadReduce(const LmHeadArgs &a) {
  const float *rl = cptr<float>(a.row_loss);
  double s = 0;
  for (long long r = threadIdx.x; r < a.total_rows; r += blockDim.x)
    s += rl[r];
  s = blockSumD(s);
  if (threadIdx.x == 0) {
    const float cnt = *cptr<float>(a.count);
    mptr<float>(a.loss)[0] =
        cnt > 0.f ? static_cast<float>(s / cnt) : __int_as_float(0x7fc00000);
  }
}

// ----------------------------------------------------------- finite_check

__device__ __forceinline__ bool nonFiniteT(float x) { return nonFinite(x); }
__device__ __forceinline__ bool nonFiniteT(bf16 x) {
  return (x.bits & 0x7f80u) == 0x7f80u;
}

template <typename T> __device__ void finiteCheck(const FiniteCheckArgs &a) {
  const T *x = cptr<T>(a.x);
  const long long n = a.n;
  unsigned long long *slot = mptr<unsigned long long>(a.slot);
  const unsigned long long tag = static_cast<unsigned long long>(a.step) << 40;
  // Each thread walks increasing indices, so its first hit is its smallest;
  // the atomicMin keeps the smallest over all threads (and steps).
  const long long n4 = aligned4<T>(a.x) ? n / 4 : 0;
  for (long long v = gtid(); v < n4; v += gstride()) {
    const float4 q = ld4(x, 4 * v);
    if (nonFinite(q.x) || nonFinite(q.y) || nonFinite(q.z) || nonFinite(q.w)) {
      const long long k = nonFinite(q.x)   ? 0
                          : nonFinite(q.y) ? 1
                          : nonFinite(q.z) ? 2
                                           : 3;
      atomicMin(slot, tag | static_cast<unsigned long long>(4 * v + k));
      return;
    }
  }
  for (long long i = 4 * n4 + gtid(); i < n; i += gstride())
    if (nonFiniteT(x[i])) {
      atomicMin(slot, tag | static_cast<unsigned long long>(i));
      return;
    }
}

} // namespace ts
} // namespace k
} // namespace mm

// ------------------------------------------------------------ entry points

#define MM_TS_ENTRY(prefix, suffix, Args, threads)                             \
  extern "C" __global__ void __launch_bounds__(threads)                        \
      prefix##suffix(mm::k::Args a)
/// An entry with at least `blocks` resident blocks per multiprocessor.
#define MM_TS_ENTRY_OCC(prefix, suffix, Args, threads, blocks)                 \
  extern "C" __global__ void __launch_bounds__(threads, blocks)                \
      prefix##suffix(mm::k::Args a)

#define MM_RMS_NORM_GRAD_ENTRIES(prefix, T, D)                                 \
  MM_TS_ENTRY(prefix, _zero, RmsNormGradArgs, 256) {                           \
    mm::k::ts::zeroF32(a.dw, a.n);                                             \
  }                                                                            \
  MM_TS_ENTRY_OCC(prefix, _rows, RmsNormGradArgs, 256, 2) {                    \
    mm::k::ts::rmsNormGradRows<T>(a);                                          \
  }                                                                            \
  MM_TS_ENTRY(prefix, _reduce, RmsNormGradArgs, 256) {                         \
    mm::k::ts::rmsNormGradReduce(a);                                           \
  }

#define MM_SILU_GRAD_ENTRIES(prefix, T, D)                                     \
  MM_TS_ENTRY(prefix, , ActGradArgs, 256) { mm::k::ts::actGrad<T, true>(a); }

#define MM_SIGMOID_GRAD_ENTRIES(prefix, T, D)                                  \
  MM_TS_ENTRY(prefix, , ActGradArgs, 256) {                                    \
    mm::k::ts::actGrad<T, false>(a);                                           \
  }                                                                            \
  MM_TS_ENTRY(prefix, _gate, GateGradArgs, 256) { mm::k::ts::gateGrad<T>(a); }

#define MM_ROPE_GRAD_ENTRIES(prefix, T, D)                                     \
  MM_TS_ENTRY(prefix, , RopeGradArgs, 256) { mm::k::ts::ropeGrad<T>(a); }

#define MM_EMBEDDING_GRAD_ENTRIES(prefix, T, D)                                \
  MM_TS_ENTRY(prefix, _clear, EmbeddingGradArgs, 256) {                        \
    mm::k::ts::embeddingGradClear(a);                                          \
  }                                                                            \
  MM_TS_ENTRY(prefix, _link, EmbeddingGradArgs, 256) {                         \
    mm::k::ts::embeddingGradLink(a);                                           \
  }                                                                            \
  MM_TS_ENTRY(prefix, _rows, EmbeddingGradArgs, 256) {                         \
    mm::k::ts::embeddingGradRows<T>(a);                                        \
  }                                                                            \
  MM_TS_ENTRY(prefix, _heavy, EmbeddingGradArgs, 256) {                        \
    mm::k::ts::embeddingGradHeavy<T>(a);                                       \
  }

#define MM_GRAD_NORM_ENTRIES(prefix, T, D)                                     \
  MM_TS_ENTRY(prefix, _zero, GradNormArgs, 32) {                               \
    if (threadIdx.x == 0 && blockIdx.x == 0)                                   \
      *mm::k::mptr<double>(a.acc) = 0.0;                                       \
  }                                                                            \
  MM_TS_ENTRY(prefix, _sumsq, GradNormArgs, 256) {                             \
    mm::k::ts::gradNormSumsq(a);                                               \
  }                                                                            \
  MM_TS_ENTRY(prefix, _sumsq_multi, GradNormArgs, 256) {                       \
    mm::k::ts::gradNormSumsqMulti(a);                                          \
  }                                                                            \
  MM_TS_ENTRY(prefix, _finalize, GradNormArgs, 32) {                           \
    if (threadIdx.x == 0 && blockIdx.x == 0)                                   \
      *mm::k::mptr<float>(a.out) =                                             \
          static_cast<float>(sqrt(*mm::k::cptr<double>(a.acc)));               \
  }

#define MM_ADAMW_ENTRIES(prefix, T, D)                                         \
  MM_TS_ENTRY(prefix, , AdamWArgs, 256) {                                      \
    if (mm::k::ts::normFinite(a.norm))                                         \
      mm::k::ts::adamw(a);                                                     \
  }                                                                            \
  MM_TS_ENTRY(prefix, _multi, AdamWArgs, 256) {                                \
    if (mm::k::ts::normFinite(a.norm))                                         \
      mm::k::ts::adamwMulti(a);                                                \
  }

// Every CAME phase that writes a state is skipped on a non-finite norm.
#define MM_CAME_ENTRIES(prefix, T, D)                                          \
  MM_TS_ENTRY(prefix, _zero, CameArgs, 256) { mm::k::ts::cameZero(a); }        \
  MM_TS_ENTRY(prefix, _sq, CameArgs, 256) {                                    \
    if (mm::k::ts::normFinite(a.norm))                                         \
      mm::k::ts::cameSq(a);                                                    \
  }                                                                            \
  MM_TS_ENTRY(prefix, _vfac, CameArgs, 256) {                                  \
    if (mm::k::ts::normFinite(a.norm))                                         \
      mm::k::ts::cameFactors(a, a.col, a.col_sum, a.row, a.row_mean, a.beta2); \
  }                                                                            \
  MM_TS_ENTRY(prefix, _u, CameArgs, 256) {                                     \
    if (mm::k::ts::normFinite(a.norm))                                         \
      mm::k::ts::cameU(a);                                                     \
  }                                                                            \
  MM_TS_ENTRY(prefix, _m, CameArgs, 256) {                                     \
    if (mm::k::ts::normFinite(a.norm))                                         \
      mm::k::ts::cameM(a);                                                     \
  }                                                                            \
  MM_TS_ENTRY(prefix, _sfac, CameArgs, 256) {                                  \
    if (mm::k::ts::normFinite(a.norm))                                         \
      mm::k::ts::cameFactors(a, a.res_col, a.res_col_sum, a.res_row,           \
                             a.res_row_mean, a.beta3);                         \
  }                                                                            \
  MM_TS_ENTRY(prefix, _p, CameArgs, 256) {                                     \
    if (mm::k::ts::normFinite(a.norm))                                         \
      mm::k::ts::cameP(a);                                                     \
  }

#define MM_CAME_VECTOR_ENTRIES(prefix, T, D)                                   \
  MM_TS_ENTRY(prefix, _zero, CameVectorArgs, 32) {                             \
    if (threadIdx.x == 0 && blockIdx.x == 0)                                   \
      *mm::k::mptr<double>(a.workspace) = 0.0;                                 \
  }                                                                            \
  MM_TS_ENTRY(prefix, _v, CameVectorArgs, 256) {                               \
    if (mm::k::ts::normFinite(a.norm))                                         \
      mm::k::ts::cameVectorV(a);                                               \
  }                                                                            \
  MM_TS_ENTRY(prefix, _p, CameVectorArgs, 256) {                               \
    if (mm::k::ts::normFinite(a.norm))                                         \
      mm::k::ts::cameVectorP(a);                                               \
  }

#define MM_STORE_PARAM_ENTRIES(prefix, T, D)                                   \
  MM_TS_ENTRY(prefix, , StoreParamArgs, 256) { mm::k::ts::storeParam<T>(a); }

#define MM_LM_HEAD_ENTRIES(prefix, T, D)                                       \
  MM_TS_ENTRY(prefix, _count, LmHeadArgs, 1024) { mm::k::ts::lmHeadCount(a); } \
  MM_TS_ENTRY(prefix, _rows, LmHeadArgs, 1024) {                               \
    mm::k::ts::lmHeadRows<T, true>(a);                                         \
  }                                                                            \
  MM_TS_ENTRY(prefix, _rows_loss, LmHeadArgs, 512) {                           \
    mm::k::ts::lmHeadRows<T, false>(a);                                        \
  }                                                                            \
  MM_TS_ENTRY(prefix, _reduce, LmHeadArgs, 1024) { mm::k::ts::lmHeadReduce(a); }

#define MM_FINITE_CHECK_ENTRIES(prefix, T, D)                                  \
  MM_TS_ENTRY(prefix, , FiniteCheckArgs, 256) { mm::k::ts::finiteCheck<T>(a); }
