// The entries of kernels/lightning_attention_grad.cuh that the GPU test loads,
// expanded exactly as mm-codegen-cuda does (prefix mm_lightning_attention_grad
// _<f32|bf16>_d<D>), plus SIMT-form bf16 entries for D = 64, 128 (prefix
// mm_lgrad_simt_bf16_d<D>) that the test uses as the reference of the
// tensor-core form on shapes too long for the CPU reference.
#include "kernels/lightning_attention_grad.cuh"

MM_LIGHTNING_ATTENTION_GRAD_ENTRIES(mm_lightning_attention_grad_f32_d8, float,
                                    8)
MM_LIGHTNING_ATTENTION_GRAD_ENTRIES(mm_lightning_attention_grad_f32_d16, float,
                                    16)
MM_LIGHTNING_ATTENTION_GRAD_ENTRIES(mm_lightning_attention_grad_f32_d32, float,
                                    32)
MM_LIGHTNING_ATTENTION_GRAD_ENTRIES(mm_lightning_attention_grad_f32_d64, float,
                                    64)
MM_LIGHTNING_ATTENTION_GRAD_ENTRIES(mm_lightning_attention_grad_f32_d128, float,
                                    128)
MM_LIGHTNING_ATTENTION_GRAD_ENTRIES(mm_lightning_attention_grad_bf16_d8,
                                    mm::k::bf16, 8)
MM_LIGHTNING_ATTENTION_GRAD_ENTRIES(mm_lightning_attention_grad_bf16_d16,
                                    mm::k::bf16, 16)
MM_LIGHTNING_ATTENTION_GRAD_ENTRIES(mm_lightning_attention_grad_bf16_d32,
                                    mm::k::bf16, 32)
MM_LIGHTNING_ATTENTION_GRAD_ENTRIES(mm_lightning_attention_grad_bf16_d64,
                                    mm::k::bf16, 64)
MM_LIGHTNING_ATTENTION_GRAD_ENTRIES(mm_lightning_attention_grad_bf16_d128,
                                    mm::k::bf16, 128)

namespace mm::k::lgrad {
/// The SIMT form for bf16 operands (the reference of the tensor-core form).
template <int D> struct Simt : Impl<float, D> {
  __device__ static void states(const LightningGradArgs &a,
                                unsigned char *smem) {
    statesGeneric<bf16, D>(a, reinterpret_cast<float *>(smem));
  }
  __device__ static void out(const LightningGradArgs &a, unsigned char *smem) {
    outGeneric<bf16, D>(a, reinterpret_cast<float *>(smem));
  }
};
} // namespace mm::k::lgrad

#define MM_LGRAD_SIMT(prefix, D)                                               \
  extern "C" __global__ void __launch_bounds__(256)                            \
      prefix##_states(const mm::k::LightningGradArgs a) {                      \
    extern __shared__ __align__(16) unsigned char mm_lgrad_smem[];             \
    mm::k::lgrad::Simt<D>::states(a, mm_lgrad_smem);                           \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(256)                            \
      prefix##_scan(const mm::k::LightningGradArgs a) {                        \
    mm::k::lgrad::scan<D>(a);                                                  \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(256)                            \
      prefix##_out(const mm::k::LightningGradArgs a) {                         \
    extern __shared__ __align__(16) unsigned char mm_lgrad_smem[];             \
    mm::k::lgrad::Simt<D>::out(a, mm_lgrad_smem);                              \
  }

MM_LGRAD_SIMT(mm_lgrad_simt_bf16_d64, 64)
MM_LGRAD_SIMT(mm_lgrad_simt_bf16_d128, 128)
