// Shared device helpers of the kernel templates: the bf16 storage type
// (bit-level, so that NVRTC needs no toolkit header), loads/stores that convert
// to and from fp32, and warp/block reductions. Every kernel computes in fp32
// (or wider) and only stores in its element type T.
#pragma once

#include "kernels/args.h"

namespace mm {
namespace k {

__device__ __forceinline__ float infinity() {
  return __int_as_float(0x7f800000);
}

/// bfloat16 storage: the upper 16 bits of an IEEE float.
struct bf16 {
  unsigned short bits;
};

__device__ __forceinline__ float toF32(float x) { return x; }
__device__ __forceinline__ float toF32(bf16 x) {
  return __uint_as_float(static_cast<unsigned>(x.bits) << 16);
}

template <typename T> __device__ __forceinline__ T fromF32(float x);
template <> __device__ __forceinline__ float fromF32<float>(float x) {
  return x;
}
/// Round to nearest even; NaN stays a (quiet) NaN.
template <> __device__ __forceinline__ bf16 fromF32<bf16>(float x) {
  unsigned u = __float_as_uint(x);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return bf16{static_cast<unsigned short>((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{static_cast<unsigned short>(u >> 16)};
}

/// Two floats as one register of two bf16 (the lower index in the low half),
/// the operand format of the tensor-core instructions: one cvt (round to
/// nearest even, sm_80+). Rounding in software costs ~8 instructions a value;
/// in the lightning output launch that was most of the issue slots
/// (bench/results/light2.md).
__device__ __forceinline__ unsigned packBf16(float lo, float hi) {
  unsigned r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

/// c += a·b on the tensor cores: one m16n8k16 bf16 product with fp32
/// accumulators. Fragment layouts (PTX ISA), with g = lane/4 and t = lane%4: a
/// = {(g, 2t..2t+1), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..)} of the 16×16
/// row-major A; b = {(k 2t..2t+1, n g), (k 2t+8.., n g)} of the 16×8 B; c =
/// {(g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1)} of the 16×8 C.
__device__ __forceinline__ void mmaBf16(float (&c)[4], const unsigned (&a)[4],
                                        const unsigned (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
      "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

template <typename T>
__device__ __forceinline__ float ld(const T *p, long long i) {
  return toF32(p[i]);
}
template <typename T>
__device__ __forceinline__ void st(T *p, long long i, float v) {
  p[i] = fromF32<T>(v);
}

template <typename T> __device__ __forceinline__ const T *cptr(dptr p) {
  return reinterpret_cast<const T *>(p);
}
template <typename T> __device__ __forceinline__ T *mptr(dptr p) {
  return reinterpret_cast<T *>(p);
}

__device__ __forceinline__ float siluF(float x) {
  return x / (1.0f + __expf(-x));
}
__device__ __forceinline__ float sigmoidF(float x) {
  return 1.0f / (1.0f + __expf(-x));
}

__device__ __forceinline__ float4 f4(float a, float b, float c, float d) {
  float4 r;
  r.x = a;
  r.y = b;
  r.z = c;
  r.w = d;
  return r;
}
/// Four consecutive elements from p + i (i a multiple of 4, p aligned).
__device__ __forceinline__ float4 ld4(const float *p, long long i) {
  return *reinterpret_cast<const float4 *>(p + i);
}
__device__ __forceinline__ float4 ld4(const bf16 *p, long long i) {
  const uint2 u = *reinterpret_cast<const uint2 *>(p + i);
  return f4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u),
            __uint_as_float(u.y << 16), __uint_as_float(u.y & 0xffff0000u));
}
__device__ __forceinline__ void st4(float *p, long long i, float4 v) {
  *reinterpret_cast<float4 *>(p + i) = v;
}
__device__ __forceinline__ void st4(bf16 *p, long long i, float4 v) {
  uint2 u;
  u.x = packBf16(v.x, v.y);
  u.y = packBf16(v.z, v.w);
  *reinterpret_cast<uint2 *>(p + i) = u;
}
/// True when every address is a multiple of 16 bytes (f32 groups) / 8 (bf16).
template <typename T> __device__ __forceinline__ bool aligned4(dptr p) {
  return (p & (sizeof(T) * 4 - 1)) == 0;
}

__device__ __forceinline__ float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warpMax(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// Sum over the block (THREADS a multiple of 32); every thread gets the result.
/// `red` holds THREADS/32 floats of shared memory.
template <int THREADS>
__device__ __forceinline__ float blockSum(float v, float *red) {
  v = warpSum(v);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0)
    red[warp] = v;
  __syncthreads();
  float s = 0.f;
  for (int i = 0; i < THREADS / 32; ++i)
    s += red[i];
  return s;
}
template <int THREADS>
__device__ __forceinline__ float blockMax(float v, float *red) {
  v = warpMax(v);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0)
    red[warp] = v;
  __syncthreads();
  float m = red[0];
  for (int i = 1; i < THREADS / 32; ++i)
    m = fmaxf(m, red[i]);
  return m;
}

/// Records the first run-time error of a launch (see ErrorSlot).
__device__ __forceinline__ void reportError(dptr slot, long long row,
                                            long long value, long long kind) {
  ErrorSlot *e = mptr<ErrorSlot>(slot);
  if (atomicCAS(&e->row, 0ull, static_cast<unsigned long long>(row + 1)) ==
      0ull) {
    e->value = value;
    e->kind = kind;
  }
}

} // namespace k
} // namespace mm
