// The moe_grad entries the GPU test loads, expanded as mm-codegen-cuda does.
#include "kernels/moe_grad.cuh"

MM_MOE_GRAD_ENTRIES(mm_moe_grad_f32, float, 0)
MM_MOE_GRAD_ENTRIES(mm_moe_grad_bf16, mm::k::bf16, 0)
