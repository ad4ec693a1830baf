// Standalone check-and-time harness of the bf16 softmax attention kernel
// (kernels/softmax_attention.cuh) next to torch SDPA: built as a shared library
// that test/gpu/attention_bench.py loads with ctypes. Build (here, no GPU
// needed):
//   nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a -I. -shared
//   -Xcompiler -fPIC \
//     test/gpu/attention_bench.cu -o libattn_bench.so
#include "kernels/softmax_attention.cuh"
#include "kernels/softmax_attention_tma.h"

#include <cuda_runtime.h>

using namespace mm;

template <int D, int BQ, int BK>
__global__ void __launch_bounds__(2 * BQ) gAttn(k::SoftmaxAttentionArgs a) {
  extern __shared__ float smem[];
  k::softmaxAttention<k::bf16, D, BQ, BK, 2 * BQ>(a, smem);
}

/// The mma.sync form directly (the dispatch picks the same form for these tiles).
template <int D, int BQ, int BK>
__global__ void __launch_bounds__(2 * BQ) gAttnMma(k::SoftmaxAttentionArgs a) {
  extern __shared__ float smem[];
  k::softmaxAttentionTensorCores<D, BQ, BK, 2 * BQ>(a, smem);
}

/// The FA3 form with given settings (the dispatch takes attentionFa3Stages(),
/// attentionFa3PingPong(), attentionFa3EarlyK(), attentionFa3PackEarly(),
/// attentionFa3Tma()).
template <int STAGES, bool PINGPONG, bool EARLY_K, bool PACK_EARLY, bool TMA,
          bool HINT>
__global__ void __launch_bounds__(384)
    gAttnFa3(const __grid_constant__ k::SoftmaxAttentionArgs a) {
  extern __shared__ float smem[];
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  k::softmaxAttentionFa3<128, 128, 384, STAGES, PINGPONG, EARLY_K, PACK_EARLY,
                         TMA, HINT>(a, smem);
#endif
}
/// The TMA maps of `a` (kernels/softmax_attention_tma.h), cached for the last
/// shape and pointers so that the timed loop does not encode them per launch.
static int withMaps(k::SoftmaxAttentionArgs &a) {
  static decltype(&cuTensorMapEncodeTiled) encode = nullptr;
  static k::SoftmaxAttentionArgs last{};
  if (!encode) {
    void *fn = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000,
                                         cudaEnableDefault,
                                         &q) != cudaSuccess ||
        !fn)
      return -2;
    encode = reinterpret_cast<decltype(&cuTensorMapEncodeTiled)>(fn);
  }
  if (last.tma_maps && last.q == a.q && last.k == a.k && last.v == a.v &&
      last.batch == a.batch && last.seq == a.seq && last.heads == a.heads &&
      last.kv_heads == a.kv_heads) {
    a.tma_maps = 1;
    a.tma_q = last.tma_q;
    a.tma_k = last.tma_k;
    a.tma_v = last.tma_v;
    return 0;
  }
  if (k::softmaxAttentionTmaMaps(a, encode) != CUDA_SUCCESS)
    return -3;
  last = a;
  return 0;
}
template <int STAGES, bool PINGPONG, bool EARLY_K, bool PACK_EARLY,
          bool TMA = false, bool HINT = false>
static int launchFa3(k::SoftmaxAttentionArgs a, cudaStream_t stream) {
  if (TMA && withMaps(a) != 0)
    return -2;
  const int smem = static_cast<int>(k::attentionFa3SmemBytes(STAGES));
  auto fn = gAttnFa3<STAGES, PINGPONG, EARLY_K, PACK_EARLY, TMA, HINT>;
  cudaError_t e = cudaFuncSetAttribute(
      fn, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess)
    return static_cast<int>(e);
  fn<<<dim3((a.seq + 127) / 128, a.heads, a.batch), 384, smem, stream>>>(a);
  return static_cast<int>(cudaGetLastError());
}

template <int D, int BQ, int BK, bool MMA = false>
static int launch(const k::SoftmaxAttentionArgs &a, cudaStream_t stream) {
  const int smem = static_cast<int>(k::attentionBf16SmemBytes(D, BK));
  auto fn = MMA ? gAttnMma<D, BQ, BK> : gAttn<D, BQ, BK>;
  cudaError_t e = cudaFuncSetAttribute(
      fn, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess)
    return static_cast<int>(e);
  fn<<<dim3((a.seq + BQ - 1) / BQ, a.heads, a.batch), 2 * BQ, smem, stream>>>(
      a);
  return static_cast<int>(cudaGetLastError());
}

/// variant: 0 = mma.sync 128×64 tiles, 1 = mma.sync 64×64 (2–4, the older
/// one-warpgroup wgmma form, were removed once the FA3 form replaced it); the
/// FA3 form (stages, ping-pong, early K release, pack early): 5 = 3,0,0,0,
/// 6 = 3,1,0,0, 7 = 3,1,1,0, 8 = 2,1,1,0, 9 = 3,1,1,1, 10 = 3,0,1,1,
/// 11 = 3,0,1,0 (these with the cp.async producer); with the TMA producer:
/// 12 = 3,1,1,0, 13 = 2,1,1,0 (the default), 14 = 3,0,1,0, 15 = 3,1,0,0,
/// 16 = 3,1,1,0 with an L2 evict_last hint on the K and V copies,
/// 17 = 2,0,1,0;
/// D = 64 (0, 1) or 128.
extern "C" int attn_bf16(int variant, void *q, void *k, void *v, void *out,
                         long long B, long long T, long long H, long long HKV,
                         int D, double scale, void *stream) {
  k::SoftmaxAttentionArgs a{reinterpret_cast<k::dptr>(q),
                            reinterpret_cast<k::dptr>(k),
                            reinterpret_cast<k::dptr>(v),
                            reinterpret_cast<k::dptr>(out),
                            B,
                            T,
                            H,
                            HKV,
                            scale};
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (D == 128) {
    switch (variant) {
    case 0:
      return launch<128, 128, 64, true>(a, s);
    case 1:
      return launch<128, 64, 64, true>(a, s);
    case 5:
      return launchFa3<3, false, false, false>(a, s);
    case 6:
      return launchFa3<3, true, false, false>(a, s);
    case 7:
      return launchFa3<3, true, true, false>(a, s);
    case 8:
      return launchFa3<2, true, true, false>(a, s);
    case 9:
      return launchFa3<3, true, true, true>(a, s);
    case 10:
      return launchFa3<3, false, true, true>(a, s);
    case 11:
      return launchFa3<3, false, true, false>(a, s);
    case 12:
      return launchFa3<3, true, true, false, true>(a, s);
    case 13:
      return launchFa3<2, true, true, false, true>(a, s);
    case 14:
      return launchFa3<3, false, true, false, true>(a, s);
    case 15:
      return launchFa3<3, true, false, false, true>(a, s);
    case 16:
      return launchFa3<3, true, true, false, true, true>(a, s);
    case 17:
      return launchFa3<2, false, true, false, true>(a, s);
    }
  } else if (D == 64) {
    switch (variant) {
    case 0:
      return launch<64, 128, 64>(a, s);
    case 1:
      return launch<64, 64, 64>(a, s);
    }
  }
  return -1;
}
