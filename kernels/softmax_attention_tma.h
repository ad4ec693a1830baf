// Host side of the FA3 softmax attention form's TMA loads
// (kernels/softmax_attention.cuh, softmaxAttentionFa3): encodes the three
// tensor maps of SoftmaxAttentionArgs (tma_q, tma_k, tma_v) with the driver's
// cuTensorMapEncodeTiled, which the caller passes in (the executor loads it
// with dlopen, runtime/cuda/CudaDriver.h; the tests link libcuda or ask the
// runtime for the entry point). Host only: NVRTC never sees this header.
//
// Maps (bf16, D = 128): q as the 3-D tensor (Hq·D, T, B), k and v as (Hkv·D,
// T, B), innermost first; box (64, 128, 1) = one 64-column half of one head's
// 128-row tile, 128-byte swizzle (the layout the wgmma descriptors read:
// 16-byte chunk c of row r at chunk c ^ (r % 8) of the row's 128 bytes). Rows
// past T of batch b are outside dimension 1, so TMA fills them with zeros
// instead of reading batch b+1 (ragged T needs no masking of the loads).
#pragma once

#if !defined(__CUDACC_RTC__)
#include "kernels/args.h"

#include <cuda.h>

namespace mm {
namespace k {

static_assert(sizeof(TmaDesc) == sizeof(CUtensorMap) &&
                  alignof(TmaDesc) == alignof(CUtensorMap),
              "TmaDesc is an opaque CUtensorMap");

/// Fills a.tma_q, a.tma_k, a.tma_v and sets a.tma_maps = 1 from a.q, a.k, a.v,
/// a.batch, a.seq, a.heads, a.kv_heads (bf16, head_dim 128). Returns the first
/// failing CUresult, or CUDA_SUCCESS.
inline CUresult
softmaxAttentionTmaMaps(SoftmaxAttentionArgs &a,
                        decltype(&::cuTensorMapEncodeTiled) encode) {
  constexpr int D = 128;
  auto one = [&](TmaDesc &m, dptr base, long long heads) {
    const cuuint64_t dims[3] = {static_cast<cuuint64_t>(heads * D),
                                static_cast<cuuint64_t>(a.seq),
                                static_cast<cuuint64_t>(a.batch)};
    const cuuint64_t strides[2] = {
        static_cast<cuuint64_t>(heads * D * 2),
        static_cast<cuuint64_t>(a.seq * heads * D * 2)};
    const cuuint32_t box[3] = {64, 128, 1}, unit[3] = {1, 1, 1};
    return encode(
        reinterpret_cast<CUtensorMap *>(&m), CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
        3, reinterpret_cast<void *>(base), dims, strides, box, unit,
        CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
        CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  };
  CUresult r = one(a.tma_q, a.q, a.heads);
  if (r == CUDA_SUCCESS)
    r = one(a.tma_k, a.k, a.kv_heads);
  if (r == CUDA_SUCCESS)
    r = one(a.tma_v, a.v, a.kv_heads);
  a.tma_maps = r == CUDA_SUCCESS ? 1 : 0;
  return r;
}

} // namespace k
} // namespace mm
#endif
