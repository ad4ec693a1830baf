// Elementwise kernels (docs/kernels.md): silu, sigmoid, mul, scaled_add, and
// the fused sigmoid_mul (out = sigmoid(a) * b: the output gate of lightning
// attention, fused by mm-fuse).
//
// Operands: a, b, out of n elements of T, any shape (flat). May run in place.
// Tiling: a grid-stride loop, one element per thread per step (coalesced); math
// in fp32.
#pragma once

#include "kernels/common.cuh"

namespace mm {
namespace k {

enum ElementwiseOp {
  kSilu = 0,
  kSigmoid = 1,
  kMul = 2,
  kScaledAdd = 3,
  kSigmoidMul = 4
};

template <typename T, int OP>
__device__ void elementwise(const ElementwiseArgs &p) {
  const T *a = cptr<T>(p.a);
  const T *b = cptr<T>(p.b);
  T *out = mptr<T>(p.out);
  const float alpha = static_cast<float>(p.alpha),
              beta = static_cast<float>(p.beta);
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i =
           static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < p.n; i += stride) {
    const float x = ld(a, i);
    float y;
    if (OP == kSilu)
      y = siluF(x);
    else if (OP == kSigmoid)
      y = sigmoidF(x);
    else if (OP == kMul)
      y = x * ld(b, i);
    else if (OP == kScaledAdd)
      y = alpha * x + beta * ld(b, i);
    else
      y = sigmoidF(x) * ld(b, i);
    st(out, i, y);
  }
}

} // namespace k
} // namespace mm
