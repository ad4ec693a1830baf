// Small PTX helpers shared by the tensor-core kernels (softmax_attention.cuh,
// moe.cuh): shared addresses and 16-byte cp.async with zero fill (bf16x2
// packing is packBf16 in common.cuh). Header-only, device code.
#pragma once

namespace mm {
namespace k {

/// Shared-memory address of a generic pointer into shared memory (the operand
/// of cp.async, ldmatrix and wgmma descriptors).
__device__ __forceinline__ unsigned sharedAddr(const void *ptr) {
  return static_cast<unsigned>(__cvta_generic_to_shared(ptr));
}
/// 16 bytes global → shared without passing through registers; `valid` false
/// writes zeros.
__device__ __forceinline__ void cpAsync16(unsigned dst, const void *src,
                                          bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst),
               "l"(src), "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cpAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
__device__ __forceinline__ void cpAsyncWaitAll() {
  asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}
} // namespace k
} // namespace mm
