// rms_norm and add_rms_norm (docs/kernels.md): out = x * rsqrt(mean(x²) + eps)
// * w over the last dim, where add_rms_norm first forms x = alpha*a + beta*b
// (the residual scaling of a MiniMax layer fused into the norm that follows it,
// so the sum never reaches memory).
//
// Operands: a, b, out [rows, N] T; w [N] T; row-major. May run in place (out ==
// a). Tiling: one block of THREADS per row. Fast path (N % 4 == 0, N ≤
// 4·THREADS·RN_V, operands 4-element aligned): thread i loads the 4-element
// groups i, i + THREADS, .. (8-byte bf16 / 16-byte f32 loads) once, keeps x in
// registers, accumulates Σx² in fp32 (block reduction) and writes the groups
// back. Otherwise: pass 1 accumulates Σx², pass 2 reloads x and writes. Each
// element is read and written by the same thread.
#pragma once

#include "kernels/common.cuh"

namespace mm {
namespace k {

/// 4-element groups a thread of the fast path keeps in registers.
constexpr int RN_V = 4;

template <typename T, int THREADS, bool ADD>
__device__ void rmsNorm(const RmsNormArgs &p) {
  __shared__ float red[THREADS / 32];
  const long long r = blockIdx.x;
  if (r >= p.rows)
    return;
  if (p.n % 4 == 0 && p.n <= 4ll * THREADS * RN_V && aligned4<T>(p.a) &&
      aligned4<T>(p.w) && aligned4<T>(p.out) && (!ADD || aligned4<T>(p.b))) {
    const T *a = cptr<T>(p.a) + r * p.n;
    const T *b = ADD ? cptr<T>(p.b) + r * p.n : nullptr;
    const float alpha = static_cast<float>(p.alpha),
                beta = static_cast<float>(p.beta);
    float4 xv[RN_V];
    float ss = 0.f;
#pragma unroll
    for (int j = 0; j < RN_V; ++j) {
      const long long c = 4ll * (threadIdx.x + THREADS * j);
      if (c < p.n) {
        xv[j] = ld4(a, c);
        if (ADD) {
          const float4 bv = ld4(b, c);
          xv[j] = f4(alpha * xv[j].x + beta * bv.x, alpha * xv[j].y + beta * bv.y,
                     alpha * xv[j].z + beta * bv.z,
                     alpha * xv[j].w + beta * bv.w);
        }
        ss = fmaf(xv[j].x, xv[j].x, ss);
        ss = fmaf(xv[j].y, xv[j].y, ss);
        ss = fmaf(xv[j].z, xv[j].z, ss);
        ss = fmaf(xv[j].w, xv[j].w, ss);
      }
    }
    ss = blockSum<THREADS>(ss, red);
    const float inv =
        rsqrtf(ss / static_cast<float>(p.n) + static_cast<float>(p.eps));
    T *out = mptr<T>(p.out) + r * p.n;
    const T *w = cptr<T>(p.w);
#pragma unroll
    for (int j = 0; j < RN_V; ++j) {
      const long long c = 4ll * (threadIdx.x + THREADS * j);
      if (c < p.n) {
        const float4 wv = ld4(w, c);
        st4(out, c,
            f4(xv[j].x * inv * wv.x, xv[j].y * inv * wv.y,
               xv[j].z * inv * wv.z, xv[j].w * inv * wv.w));
      }
    }
    return;
  }
  const T *a = cptr<T>(p.a) + r * p.n;
  const T *b = ADD ? cptr<T>(p.b) + r * p.n : nullptr;
  const T *w = cptr<T>(p.w);
  T *out = mptr<T>(p.out) + r * p.n;
  const float alpha = static_cast<float>(p.alpha),
              beta = static_cast<float>(p.beta);
  auto x = [&](long long i) {
    return ADD ? alpha * ld(a, i) + beta * ld(b, i) : ld(a, i);
  };
  float ss = 0.f;
  for (long long i = threadIdx.x; i < p.n; i += THREADS) {
    const float v = x(i);
    ss = fmaf(v, v, ss);
  }
  ss = blockSum<THREADS>(ss, red);
  const float inv =
      rsqrtf(ss / static_cast<float>(p.n) + static_cast<float>(p.eps));
  for (long long i = threadIdx.x; i < p.n; i += THREADS)
    st(out, i, x(i) * inv * ld(w, i));
}

} // namespace k
} // namespace mm
