// rms_norm and add_rms_norm (docs/kernels.md): out = x * rsqrt(mean(x²) + eps)
// * w over the last dim, where add_rms_norm first forms x = alpha*a + beta*b
// (the residual scaling of a MiniMax layer fused into the norm that follows it,
// so the sum never reaches memory).
//
// Operands: a, b, out [rows, N] T; w [N] T; row-major. May run in place (out ==
// a). Tiling: one block of THREADS per row; pass 1 accumulates Σx² in fp32
// (block reduction), pass 2 recomputes x and writes. Each element is read and
// written by the same thread.
#pragma once

#include "kernels/common.cuh"

namespace mm {
namespace k {

template <typename T, int THREADS, bool ADD>
__device__ void rmsNorm(const RmsNormArgs &p) {
  __shared__ float red[THREADS / 32];
  const long long r = blockIdx.x;
  if (r >= p.rows)
    return;
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
