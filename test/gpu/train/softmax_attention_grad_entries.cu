// The softmax_attention_grad entries the GPU test loads, expanded exactly as
// mm-codegen-cuda emits them: MM_SOFTMAX_ATTENTION_GRAD_ENTRIES(mm_<kernel>_
// <f32|bf16>_d<D>, T, D) for every (element type, head dim) under test.
#include "kernels/softmax_attention_grad.cuh"

MM_SOFTMAX_ATTENTION_GRAD_ENTRIES(mm_softmax_attention_grad_f32_d8, float, 8)
MM_SOFTMAX_ATTENTION_GRAD_ENTRIES(mm_softmax_attention_grad_f32_d16, float, 16)
MM_SOFTMAX_ATTENTION_GRAD_ENTRIES(mm_softmax_attention_grad_f32_d32, float, 32)
MM_SOFTMAX_ATTENTION_GRAD_ENTRIES(mm_softmax_attention_grad_f32_d64, float, 64)
MM_SOFTMAX_ATTENTION_GRAD_ENTRIES(mm_softmax_attention_grad_f32_d128, float,
                                  128)
MM_SOFTMAX_ATTENTION_GRAD_ENTRIES(mm_softmax_attention_grad_bf16_d8,
                                  mm::k::bf16, 8)
MM_SOFTMAX_ATTENTION_GRAD_ENTRIES(mm_softmax_attention_grad_bf16_d32,
                                  mm::k::bf16, 32)
MM_SOFTMAX_ATTENTION_GRAD_ENTRIES(mm_softmax_attention_grad_bf16_d64,
                                  mm::k::bf16, 64)
MM_SOFTMAX_ATTENTION_GRAD_ENTRIES(mm_softmax_attention_grad_bf16_d128,
                                  mm::k::bf16, 128)

// Tuning variants timed by --bench only (not part of the family's plan).
extern "C" __global__ void __launch_bounds__(256, 2)
    mm_sagx_bf16_d64_bq32_dkdv(mm::k::SoftmaxAttentionGradArgs a) {
  extern __shared__ __align__(16) float smem[];
  mm::k::sagDkdvFast<64, 32>(a, smem);
}
extern "C" __global__ void __launch_bounds__(256, 1)
    mm_sagx_bf16_d64_bq32b1_dkdv(mm::k::SoftmaxAttentionGradArgs a) {
  extern __shared__ __align__(16) float smem[];
  mm::k::sagDkdvFast<64, 32>(a, smem);
}
