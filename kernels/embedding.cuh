// embedding: out[r, :] = table[ids[r], :] (docs/kernels.md).
//
// Operands: ids [rows] i32, table [V, H] T, out [rows, H] T, row-major.
// Tiling: one block of THREADS per token row, threads striding over H
// (coalesced). An id outside [0, V) writes nothing for that row and records the
// first such row in the ErrorSlot, which the runtime turns into the same error
// the CPU backend gives.
#pragma once

#include "kernels/common.cuh"

namespace mm {
namespace k {

template <typename T, int THREADS>
__device__ void embedding(const EmbeddingArgs &a) {
  const long long r = blockIdx.x;
  if (r >= a.rows)
    return;
  const long long id = cptr<int>(a.ids)[r];
  if (id < 0 || id >= a.vocab) {
    if (threadIdx.x == 0)
      reportError(a.error, r, id, kErrorTokenId);
    return;
  }
  const T *src = cptr<T>(a.table) + id * a.hidden;
  T *dst = mptr<T>(a.out) + r * a.hidden;
  for (long long c = threadIdx.x; c < a.hidden; c += THREADS)
    dst[c] = src[c];
}

} // namespace k
} // namespace mm
