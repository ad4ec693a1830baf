// The softmax_attention_grad entries the GPU test loads, expanded exactly as
// mm-codegen-cuda emits them: MM_SOFTMAX_ATTENTION_GRAD_ENTRIES(mm_<kernel>_
// <f32|bf16>_d<D>, T, D) for every (element type, head dim) under test.
#include "kernels/softmax_attention.cuh"
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

// Tuning variants, timed and checked by --bench only (not in the family's
// plan): "_dkdv" with other key blocks / query tiles, "_stats" with other key
// tiles.
#define SAGX(name, bounds, call)                                               \
  extern "C" __global__ void __launch_bounds__ bounds name(                    \
      mm::k::SoftmaxAttentionGradArgs a) {                                     \
    extern __shared__ __align__(16) float smem[];                              \
    call;                                                                      \
  }
SAGX(mm_sagx_d64_k64q64_dkdv, (128, 2),
     (mm::k::sagDkdvFast<64, 64, 64>(a, smem)))
SAGX(mm_sagx_d64_k64q32_dkdv, (128, 3),
     (mm::k::sagDkdvFast<64, 32, 64>(a, smem)))
SAGX(mm_sagx_d128_k128q32_dkdv, (256, 1),
     (mm::k::sagDkdvFast<128, 32, 128>(a, smem)))
SAGX(mm_sagx_d64_s64_stats, (256, 1), (mm::k::sagStatsFast<64, 64>(a, smem)))
SAGX(mm_sagx_d128_s64_stats, (256, 1), (mm::k::sagStatsFast<128, 64>(a, smem)))

// The forward kernel at the tiles mm-tile picks (compiler/Tile.cpp: bf16 with
// D % 16 == 0 128×64 on 256 threads, 128×128 on 384 threads for D = 128 on
// sm_90a (the FA3 form); else square SIMT tiles) and the 128×128 mma.sync
// form, for the saved-statistics check: it writes the row
// log-sum-exp and an output copy that "_delta" reuses. The block is a
// __grid_constant__ parameter as mm-codegen-cuda emits it (the FA3 form reads
// its TMA tensor maps from there).
#define SAX(name, T, D, BQ, BK, TH)                                            \
  extern "C" __global__ void __launch_bounds__(TH)                             \
      name(const __grid_constant__ mm::k::SoftmaxAttentionArgs a) {            \
    extern __shared__ __align__(16) float smem[];                              \
    mm::k::softmaxAttention<T, D, BQ, BK, TH>(a, smem);                        \
  }
SAX(mm_sax_f32_d16_t256, float, 16, 64, 64, 256)
SAX(mm_sax_f32_d64_t256, float, 64, 32, 32, 256)
SAX(mm_sax_bf16_d8_t256, mm::k::bf16, 8, 64, 64, 256)
SAX(mm_sax_bf16_d64_t256, mm::k::bf16, 64, 128, 64, 256)
SAX(mm_sax_bf16_d128_t256, mm::k::bf16, 128, 128, 128, 256) // mma.sync
SAX(mm_sax_bf16_d128_t384, mm::k::bf16, 128, 128, 128, 384) // FA3 form
