// cross_entropy (docs/kernels.md): mean over rows with label ≥ 0 of
// logsumexp(logits) − logits[label]; label -100 is ignored, any other label
// outside [0, V) is a run-time error (first offending row recorded in the
// ErrorSlot).
//
// Operands: logits [rows, V] T, labels [rows] i32, out [] f32; row_loss [rows]
// f32 workspace. Tiling: crossEntropyRows runs one block per row (two block
// reductions in fp32: max, then Σexp); crossEntropyReduce is one block summing
// row losses in a fixed order (deterministic).
#pragma once

#include "kernels/common.cuh"

namespace mm {
namespace k {

template <typename T, int THREADS>
__device__ void crossEntropyRows(const CrossEntropyArgs &p) {
  __shared__ float red[THREADS / 32];
  const long long r = blockIdx.x;
  if (r >= p.rows)
    return;
  const int label = cptr<int>(p.labels)[r];
  float *rowLoss = mptr<float>(p.row_loss);
  if (label == -100 || label < 0 || label >= p.vocab) {
    if (threadIdx.x == 0) {
      rowLoss[r] = -1.f;
      if (label != -100)
        reportError(p.error, r, label, kErrorLabel);
    }
    return;
  }
  const T *l = cptr<T>(p.logits) + r * p.vocab;
  float mx = -infinity();
  for (long long i = threadIdx.x; i < p.vocab; i += THREADS)
    mx = fmaxf(mx, ld(l, i));
  mx = blockMax<THREADS>(mx, red);
  float s = 0.f;
  for (long long i = threadIdx.x; i < p.vocab; i += THREADS)
    s += expf(ld(l, i) - mx);
  s = blockSum<THREADS>(s, red);
  if (threadIdx.x == 0)
    rowLoss[r] = mx + logf(s) - ld(l, label);
}

template <int THREADS>
__device__ void crossEntropyReduce(const CrossEntropyArgs &p) {
  __shared__ float red[THREADS / 32];
  const float *rowLoss = cptr<float>(p.row_loss);
  float sum = 0.f, count = 0.f;
  for (long long r = threadIdx.x; r < p.rows; r += THREADS)
    if (rowLoss[r] >= 0.f) {
      sum += rowLoss[r];
      count += 1.f;
    }
  sum = blockSum<THREADS>(sum, red);
  count = blockSum<THREADS>(count, red);
  if (threadIdx.x == 0)
    mptr<float>(p.out)[0] =
        count > 0.f ? sum / count : __int_as_float(0x7fc00000);
}

} // namespace k
} // namespace mm
