// The entries of kernels/train_small.cuh for the GPU tests, expanded exactly as
// mm-codegen-cuda does: MM_<KERNEL>_ENTRIES(mm_<kernel>_<f32|bf16>, T, D).
#include "kernels/train_small.cuh"

using mm::k::bf16;

MM_RMS_NORM_GRAD_ENTRIES(mm_rms_norm_grad_f32, float, 0)
MM_RMS_NORM_GRAD_ENTRIES(mm_rms_norm_grad_bf16, bf16, 0)
MM_SILU_GRAD_ENTRIES(mm_silu_grad_f32, float, 0)
MM_SILU_GRAD_ENTRIES(mm_silu_grad_bf16, bf16, 0)
MM_SIGMOID_GRAD_ENTRIES(mm_sigmoid_grad_f32, float, 0)
MM_SIGMOID_GRAD_ENTRIES(mm_sigmoid_grad_bf16, bf16, 0)
MM_ROPE_GRAD_ENTRIES(mm_rope_grad_f32, float, 0)
MM_ROPE_GRAD_ENTRIES(mm_rope_grad_bf16, bf16, 0)
MM_EMBEDDING_GRAD_ENTRIES(mm_embedding_grad_f32, float, 0)
MM_EMBEDDING_GRAD_ENTRIES(mm_embedding_grad_bf16, bf16, 0)
MM_GRAD_NORM_ENTRIES(mm_grad_norm_f32, float, 0)
MM_ADAMW_ENTRIES(mm_adamw_f32, float, 0)
MM_CAME_ENTRIES(mm_came_f32, float, 0)
MM_CAME_VECTOR_ENTRIES(mm_came_vector_f32, float, 0)
MM_STORE_PARAM_ENTRIES(mm_store_param_f32, float, 0)
MM_STORE_PARAM_ENTRIES(mm_store_param_bf16, bf16, 0)
MM_LM_HEAD_ENTRIES(mm_lm_head_f32, float, 0)
MM_LM_HEAD_ENTRIES(mm_lm_head_bf16, bf16, 0)
MM_FINITE_CHECK_ENTRIES(mm_finite_check_f32, float, 0)
MM_FINITE_CHECK_ENTRIES(mm_finite_check_bf16, bf16, 0)
