// GPU kernel tests: every kernel template of kernels/ (and the cuBLASLt
// projection) against the CPU reference backend (runtime/cpu), at several
// shapes including ragged ones (T not a multiple of the tile), in f32 and bf16.
//
// For each case: fresh random inputs (bf16 cases round the inputs to bf16
// first, so the reference sees exactly what the GPU sees), outputs poisoned
// with NaN bytes before the launch, every CUDA call and launch checked, then
// ‖out − ref‖/‖ref‖ against 1e-4 (f32) or 1e-2 (bf16); a NaN or an unwritten
// element fails. Prints one line per case and a summary; exit status 1 on any
// failure, 77 when there is no GPU. `--quick` runs the small shapes only (for
// compute-sanitizer).
// `--bench` instead times each kernel at model-sized bf16 shapes (CUDA events,
// median of 20 after 3 warm-ups, random data) and prints ms with the achieved
// rate against the shape's floor.
#include "kernels/cross_entropy.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/embedding.cuh"
#include "kernels/lightning_attention.cuh"
#include "kernels/moe.cuh"
#include "kernels/rms_norm.cuh"
#include "kernels/rope.cuh"
#include "kernels/softmax_attention.cuh"
#include "kernels/softmax_attention_tma.h"
#include "runtime/cpu/CpuKernels.h"
#include "runtime/cuda/KernelLaunch.h"
#include "runtime/cuda/LtGemm.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace mm;
using k::bf16;

namespace {

#define CK(call)                                                               \
  do {                                                                         \
    cudaError_t e_ = (call);                                                   \
    if (e_ != cudaSuccess) {                                                   \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__,       \
                   #call, cudaGetErrorString(e_));                             \
      std::exit(1);                                                            \
    }                                                                          \
  } while (0)
#define CK_LAUNCH()                                                            \
  do {                                                                         \
    CK(cudaGetLastError());                                                    \
    CK(cudaDeviceSynchronize());                                               \
  } while (0)

std::mt19937_64 rng(20261121);
bool quick = false;
int failures = 0, cases = 0;

float bf16Round(float x) {
  unsigned u;
  std::memcpy(&u, &x, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  u &= 0xffff0000u;
  float y;
  std::memcpy(&y, &u, 4);
  return y;
}

template <typename T> constexpr bool isBf16() { return sizeof(T) == 2; }
template <typename T> const char *typeName() {
  return isBf16<T>() ? "bf16" : "f32";
}

/// Random values in [lo, hi), rounded to T's precision.
template <typename T>
std::vector<float> randomVec(size_t n, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float &x : v)
    x = isBf16<T>() ? bf16Round(u(rng)) : u(rng);
  return v;
}

struct Dev {
  void *p = nullptr;
  size_t bytes = 0;
  explicit Dev(size_t b) : bytes(b) { CK(cudaMalloc(&p, b ? b : 1)); }
  ~Dev() { cudaFree(p); }
  k::dptr d() const { return reinterpret_cast<k::dptr>(p); }
  void poison() { CK(cudaMemset(p, 0xff, bytes)); }
};

template <typename T> Dev upload(const std::vector<float> &v) {
  Dev dv(v.size() * sizeof(T));
  if (isBf16<T>()) {
    std::vector<unsigned short> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      float r = bf16Round(v[i]);
      unsigned u;
      std::memcpy(&u, &r, 4);
      h[i] = static_cast<unsigned short>(u >> 16);
    }
    CK(cudaMemcpy(dv.p, h.data(), h.size() * 2, cudaMemcpyHostToDevice));
  } else {
    CK(cudaMemcpy(dv.p, v.data(), v.size() * 4, cudaMemcpyHostToDevice));
  }
  return dv;
}
Dev uploadInts(const std::vector<int32_t> &v) {
  Dev dv(v.size() * 4);
  CK(cudaMemcpy(dv.p, v.data(), v.size() * 4, cudaMemcpyHostToDevice));
  return dv;
}

template <typename T> Dev outputBuf(size_t n) {
  Dev dv(n * sizeof(T));
  dv.poison();
  return dv;
}

template <typename T> std::vector<float> download(const Dev &dv, size_t n) {
  std::vector<float> out(n);
  if (isBf16<T>()) {
    std::vector<unsigned short> h(n);
    CK(cudaMemcpy(h.data(), dv.p, n * 2, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; ++i) {
      unsigned u = static_cast<unsigned>(h[i]) << 16;
      std::memcpy(&out[i], &u, 4);
    }
  } else {
    CK(cudaMemcpy(out.data(), dv.p, n * 4, cudaMemcpyDeviceToHost));
  }
  return out;
}

template <typename T>
void report(const std::string &kernel, const std::string &shape,
            const std::vector<float> &out, const std::vector<float> &ref) {
  double num = 0, den = 0;
  bool finite = out.size() == ref.size();
  for (size_t i = 0; i < out.size() && finite; ++i) {
    if (!std::isfinite(out[i])) {
      finite = false;
      break;
    }
    const double d = double(out[i]) - ref[i];
    num += d * d;
    den += double(ref[i]) * ref[i];
  }
  const double rel = finite ? std::sqrt(num / (den > 0 ? den : 1)) : INFINITY;
  const double tol = isBf16<T>() ? 1e-2 : 1e-4;
  const bool ok = finite && rel <= tol;
  ++cases;
  failures += !ok;
  std::printf("%-22s %-5s %-44s rel_err %.3e  tol %.0e  %s\n", kernel.c_str(),
              typeName<T>(), shape.c_str(), rel, tol,
              ok ? "PASS" : (finite ? "FAIL" : "FAIL (NaN/unwritten)"));
  std::fflush(stdout);
}

std::string dims(std::initializer_list<std::pair<const char *, long long>> d) {
  std::string s;
  for (auto [n, v] : d)
    s += (s.empty() ? "" : " ") + std::string(n) + "=" + std::to_string(v);
  return s;
}

// ---- entry points (what mm-codegen-cuda emits, instantiated here with nvcc)
// ----

template <typename T, int TH>
__global__ void __launch_bounds__(TH) gEmbedding(k::EmbeddingArgs a) {
  k::embedding<T, TH>(a);
}
template <typename T, int TH, bool ADD>
__global__ void __launch_bounds__(TH) gRmsNorm(k::RmsNormArgs a) {
  k::rmsNorm<T, TH, ADD>(a);
}
template <typename T, int OP>
__global__ void __launch_bounds__(256) gElementwise(k::ElementwiseArgs a) {
  k::elementwise<T, OP>(a);
}
template <typename T>
__global__ void __launch_bounds__(256) gRope(k::RopeArgs a) {
  k::rope<T>(a);
}
template <typename T, int D, int BLOCK, int DV, bool SILU>
__global__ void __launch_bounds__(256) gLightning(k::LightningArgs a) {
  extern __shared__ float smem[];
  k::lightningAttention<T, D, BLOCK, DV, 256, SILU>(a, smem);
}
/// The chunk-parallel lightning fast path (bf16, D = 64 or 128): three launches
/// sharing one argument block, with the launch bounds mm-codegen-cuda emits
/// (two output blocks per SM at D = 64).
template <int D, bool SILU>
__global__ void __launch_bounds__(256, D == 64 ? 4 : 2)
    gLightningStates(k::LightningChunkArgs a) {
  extern __shared__ __align__(16) unsigned char smemb[];
  k::lightningChunkStates<D, 3, SILU>(a, smemb);
}
template <int D>
__global__ void __launch_bounds__(256) gLightningScan(k::LightningChunkArgs a) {
  k::lightningChunkScan<D>(a);
}
template <int D, bool SILU>
__global__ void __launch_bounds__(256, D == 64 ? 2 : 1)
    gLightningOut(k::LightningChunkArgs a) {
  extern __shared__ __align__(16) unsigned char smemb[];
  k::lightningChunkOut<D, 3, SILU>(a, smemb);
}
template <int D, bool SILU>
void launchLightningFast(const k::LightningChunkArgs &a) {
  const int ss = static_cast<int>(k::lightningChunkStatesSmem(D, 3));
  const int so = static_cast<int>(k::lightningChunkOutSmem(D, 3));
  CK(cudaFuncSetAttribute(gLightningStates<D, SILU>,
                          cudaFuncAttributeMaxDynamicSharedMemorySize, ss));
  CK(cudaFuncSetAttribute(gLightningOut<D, SILU>,
                          cudaFuncAttributeMaxDynamicSharedMemorySize, so));
  const unsigned H = static_cast<unsigned>(a.heads),
                 B = static_cast<unsigned>(a.batch);
  if (a.nseg > 1) {
    gLightningStates<D, SILU>
        <<<dim3(static_cast<unsigned>(a.nseg - 1), H, B), 256, ss>>>(a);
    gLightningScan<D><<<dim3(k::lightningChunkScanBlocks(D), H, B), 256>>>(a);
  }
  gLightningOut<D, SILU>
      <<<dim3(static_cast<unsigned>(a.nseg), H, B), 256, so>>>(a);
}
/// The fused single launch (sm_90a, D = 128; what the runtime runs where
/// lightningFusedSegLen picks it): status words and ticket zeroed, then one
/// launch of nseg·H·B blocks.
template <bool SILU>
__global__ void __launch_bounds__(256, 1)
    gLightningFused(k::LightningChunkArgs a) {
  extern __shared__ __align__(16) unsigned char smemb[];
  k::lightningChunkFused<3, SILU>(a, smemb);
}
template <bool SILU> void launchLightningFused(const k::LightningChunkArgs &a) {
  const int so = static_cast<int>(k::lightningChunkOutSmem(128, 3));
  CK(cudaFuncSetAttribute(gLightningFused<SILU>,
                          cudaFuncAttributeMaxDynamicSharedMemorySize, so));
  const long long bh = a.batch * a.heads;
  CK(cudaMemsetAsync(reinterpret_cast<float *>(a.state) +
                         k::lightningFusedStateFloats(128, bh, a.nseg),
                     0, 4 * k::lightningFusedFlagInts(bh, a.nseg)));
  gLightningFused<SILU><<<static_cast<unsigned>(a.nseg * bh), 256, so>>>(a);
}
int deviceSms() {
  int dev = 0, n = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  return n;
}
/// Threads of the attention kernel: 256 for the f32 form, two per query row (a
/// warp per 16 rows) for the bf16 tensor-core form.
template <typename T, int BQ> __host__ __device__ constexpr int attnThreads() {
  return sizeof(T) == 2 ? 2 * BQ : 256;
}
/// Threads of the 128×128 attention tile mm-tile picks on sm_90a (D = 128):
/// the FA3 form for bf16.
template <typename T> constexpr int attnPickThreads() {
  return sizeof(T) == 2 ? 384 : attnThreads<T, 128>();
}
template <typename T, int BQ>
constexpr int attnSmem(int D, int BK, int THREADS) {
  return static_cast<int>(sizeof(T) == 2
                              ? k::attentionBf16SmemBytes(D, BK, BQ, THREADS)
                              : 4 * k::attentionSmemFloats(D, BQ, BK));
}
/// THREADS = 3·BQ with D = BQ = BK = 128 is the FA3 form (sm_90a); it reads
/// the TMA tensor maps of the block (attnMaps), hence __grid_constant__ as
/// mm-codegen-cuda emits it.
template <typename T, int D, int BQ, int BK, int THREADS>
__global__ void __launch_bounds__(THREADS)
    gAttention(const __grid_constant__ k::SoftmaxAttentionArgs a) {
  extern __shared__ float smem[];
  k::softmaxAttention<T, D, BQ, BK, THREADS>(a, smem);
}
/// The FA3 form's tensor maps (kernels/softmax_attention_tma.h), with the
/// driver's encoder from the runtime (this binary does not link libcuda).
void attnMaps(k::SoftmaxAttentionArgs &a) {
  static const auto encode = [] {
    void *fn = nullptr;
    cudaDriverEntryPointQueryResult q{};
    CK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000,
                                        cudaEnableDefault, &q));
    if (!fn || q != cudaDriverEntryPointSuccess) {
      std::fprintf(stderr, "no cuTensorMapEncodeTiled\n");
      std::exit(1);
    }
    return reinterpret_cast<decltype(&cuTensorMapEncodeTiled)>(fn);
  }();
  const CUresult r = k::softmaxAttentionTmaMaps(a, encode);
  if (r != CUDA_SUCCESS) {
    std::fprintf(stderr, "cuTensorMapEncodeTiled failed: %d\n",
                 static_cast<int>(r));
    std::exit(1);
  }
}
template <typename T>
__global__ void __launch_bounds__(256) gMoeRoute(k::MoeArgs a) {
  k::moeRoute<T, 256>(a);
}
template <int BM = 64>
__global__ void __launch_bounds__(1024) gMoeDispatch(k::MoeArgs a) {
  k::moeDispatch<BM, 1024>(a);
}
template <typename T, bool UP>
__global__ void __launch_bounds__(256) gMoeGemm(k::MoeArgs a) {
  k::moeGemm<T, 64, 64, 32, 256, UP>(a);
}
// The sm_90a wgmma form (bf16, 128x128x64 tiles, persistent CTAs, dynamic
// shared memory).
template <bool UP>
__global__ void __launch_bounds__(k::moeWgmmaThreads(), 1)
    gMoeGemmWgmma(k::MoeArgs a) {
  k::moeGemm<bf16, 128, 128, 64, 256, UP>(a);
}
void launchMoeWgmma(const k::MoeArgs &a) {
  static int sms = 0;
  if (!sms) {
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    for (const void *f : {(const void *)gMoeGemmWgmma<true>,
                          (const void *)gMoeGemmWgmma<false>})
      CK(cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              int(k::moeWgmmaSmemBytes())));
  }
  const unsigned tiles = cuda::moeGemmTiles(a.rows, a.top_k, a.experts, 128);
  const unsigned smem = unsigned(k::moeWgmmaSmemBytes());
  gMoeGemmWgmma<true><<<unsigned(k::moeWgmmaGrid(sms, tiles, a.inter, true)),
                        k::moeWgmmaThreads(), smem>>>(a);
  gMoeGemmWgmma<false><<<unsigned(k::moeWgmmaGrid(sms, tiles, a.hidden, false)),
                         k::moeWgmmaThreads(), smem>>>(a);
}
template <typename T>
__global__ void __launch_bounds__(256) gMoeCombine(k::MoeArgs a) {
  k::moeCombine<T, 256>(a);
}
template <typename T>
__global__ void __launch_bounds__(256) gCeRows(k::CrossEntropyArgs a) {
  k::crossEntropyRows<T, 256>(a);
}
__global__ void __launch_bounds__(256) gCeReduce(k::CrossEntropyArgs a) {
  k::crossEntropyReduce<256>(a);
}

// ---- cases ----

template <typename T>
void testEmbedding(long long rows, long long vocab, long long hidden) {
  std::vector<int32_t> ids(rows);
  for (auto &i : ids)
    i = static_cast<int32_t>(rng() % vocab);
  auto table = randomVec<T>(vocab * hidden);
  Dev dIds = uploadInts(ids), dTable = upload<T>(table),
      dOut = outputBuf<T>(rows * hidden);
  Dev err(sizeof(k::ErrorSlot));
  CK(cudaMemset(err.p, 0, err.bytes));
  k::EmbeddingArgs a{dIds.d(), dTable.d(), dOut.d(), err.d(),
                     rows,     vocab,      hidden};
  gEmbedding<T, 256><<<rows, 256>>>(a);
  CK_LAUNCH();
  std::vector<float> ref(rows * hidden);
  (void)cpu::embedding(ids.data(), table.data(), ref.data(), rows, vocab,
                       hidden, rows);
  report<T>("embedding", dims({{"rows", rows}, {"V", vocab}, {"H", hidden}}),
            download<T>(dOut, rows * hidden), ref);
  // A bad id is reported, not read out of bounds.
  ids[rows / 2] = static_cast<int32_t>(vocab + 3);
  Dev dBad = uploadInts(ids);
  a.ids = dBad.d();
  gEmbedding<T, 256><<<rows, 256>>>(a);
  CK_LAUNCH();
  k::ErrorSlot e{};
  CK(cudaMemcpy(&e, err.p, sizeof(e), cudaMemcpyDeviceToHost));
  const bool ok = e.row == static_cast<unsigned long long>(rows / 2 + 1) &&
                  e.value == vocab + 3 && e.kind == k::kErrorTokenId;
  ++cases;
  failures += !ok;
  std::printf("%-22s %-5s %-44s %s\n", "embedding bad id", typeName<T>(),
              "error slot names row+id", ok ? "PASS" : "FAIL");
}

template <typename T, bool ADD> void testRmsNorm(long long rows, long long n) {
  auto a = randomVec<T>(rows * n), b = randomVec<T>(rows * n),
       w = randomVec<T>(n, 0.5f, 1.5f);
  Dev da = upload<T>(a), db = upload<T>(b), dw = upload<T>(w),
      dOut = outputBuf<T>(rows * n);
  const double alpha = 1.3, beta = 0.9, eps = 1e-5;
  k::RmsNormArgs args{da.d(), db.d(), dw.d(), dOut.d(), rows,
                      n,      eps,    alpha,  beta};
  gRmsNorm<T, 256, ADD><<<rows, 256>>>(args);
  CK_LAUNCH();
  std::vector<float> ref(rows * n);
  if (ADD)
    cpu::addRmsNorm(a.data(), b.data(), w.data(), ref.data(), rows, n, alpha,
                    beta, eps);
  else
    cpu::rmsNorm(a.data(), w.data(), ref.data(), rows, n, eps);
  report<T>(ADD ? "add_rms_norm" : "rms_norm", dims({{"rows", rows}, {"N", n}}),
            download<T>(dOut, rows * n), ref);
}

// `same`: b is a (the autodiff's scaled copies scaled_add(x, x, α, 0)).
template <typename T, int OP>
void testElementwise(long long n, bool same = false) {
  static const char *names[] = {"silu", "sigmoid", "mul", "scaled_add",
                                "sigmoid_mul"};
  auto a = randomVec<T>(n, -6.f, 6.f), b = randomVec<T>(n);
  if (same)
    b = a;
  Dev da = upload<T>(a), db = upload<T>(b), dOut = outputBuf<T>(n);
  k::ElementwiseArgs args{da.d(), same ? da.d() : db.d(), dOut.d(), n, 1.1,
                          1.2};
  // The executor's grid: one thread per 8 elements (the vector path).
  gElementwise<T, OP><<<cuda::gridStride((n + 7) / 8, 256), 256>>>(args);
  CK_LAUNCH();
  std::vector<float> ref(n);
  if (OP == k::kSilu)
    cpu::silu(a.data(), ref.data(), n);
  else if (OP == k::kSigmoid)
    cpu::sigmoid(a.data(), ref.data(), n);
  else if (OP == k::kMul)
    cpu::mul(a.data(), b.data(), ref.data(), n);
  else if (OP == k::kScaledAdd)
    cpu::scaledAdd(a.data(), b.data(), ref.data(), n, 1.1, 1.2);
  else
    cpu::sigmoidMul(a.data(), b.data(), ref.data(), n);
  report<T>(names[OP], dims({{"n", n}}), download<T>(dOut, n), ref);
}

template <typename T>
void testRope(long long B, long long T_, long long H, long long D, long long R,
              double theta) {
  const long long n = B * T_ * H * D;
  auto x = randomVec<T>(n);
  Dev dx = upload<T>(x), dOut = outputBuf<T>(n);
  k::RopeArgs a{dx.d(), dOut.d(), B, T_, H, D, R, theta};
  gRope<T><<<cuda::gridStride(B * T_ * H * (D - R / 2), 256), 256>>>(a);
  CK_LAUNCH();
  std::vector<float> ref(n);
  cpu::Scratch s;
  cpu::rope(x.data(), ref.data(), B, T_, H, D, R, theta, s);
  report<T>("rope", dims({{"B", B}, {"T", T_}, {"H", H}, {"D", D}, {"R", R}}),
            download<T>(dOut, n), ref);
}

template <typename T, int D, int BLOCK, int DV, bool SILU>
void testLightning(long long B, long long T_, long long H, long long layer,
                   long long layers) {
  const long long nIn = B * T_ * H * 3 * D, nOut = B * T_ * H * D;
  auto qkv = randomVec<T>(nIn);
  Dev dIn = upload<T>(qkv), dOut = outputBuf<T>(nOut);
  const int smem = static_cast<int>(4 * k::lightningSmemFloats(D, BLOCK, DV));
  CK(cudaFuncSetAttribute(gLightning<T, D, BLOCK, DV, SILU>,
                          cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  k::LightningArgs a{dIn.d(), dOut.d(), B, T_, H, layer, layers};
  gLightning<T, D, BLOCK, DV, SILU><<<dim3(D / DV, H, B), 256, smem>>>(a);
  CK_LAUNCH();
  std::vector<float> ref(nOut);
  cpu::Scratch s;
  cpu::lightningAttention(qkv.data(), ref.data(), B, T_, H, D, 16, layer,
                          layers, s, SILU);
  report<T>(SILU ? "lightning_attn+silu" : "lightning_attention",
            dims({{"B", B},
                  {"T", T_},
                  {"H", H},
                  {"D", D},
                  {"blk", BLOCK},
                  {"dv", DV}}),
            download<T>(dOut, nOut), ref);
}

/// The fast path (bf16, D = 64 or 128) against the same CPU reference; segLen 0
/// = the launcher's choice (lightningChunkSegLen), otherwise forced (several
/// segments exercise the states and the scan).
template <int D, bool SILU>
void testLightningFast(long long B, long long T_, long long H, long long layer,
                       long long layers, long long segLen) {
  const long long nIn = B * T_ * H * 3 * D, nOut = B * T_ * H * D;
  auto qkv = randomVec<bf16>(nIn);
  Dev dIn = upload<bf16>(qkv), dOut = outputBuf<bf16>(nOut);
  if (segLen <= 0)
    segLen = k::lightningChunkSegLen(T_, B * H, deviceSms(), D);
  const long long nseg = (T_ + segLen - 1) / segLen;
  Dev ws(static_cast<size_t>(k::lightningChunkStateFloats(D, B, H, nseg)) * 4);
  ws.poison();
  k::LightningChunkArgs a{dIn.d(), dOut.d(), ws.d(), B,      T_,
                          H,       layer,    layers, segLen, nseg};
  launchLightningFast<D, SILU>(a);
  CK_LAUNCH();
  std::vector<float> ref(nOut);
  cpu::Scratch s;
  cpu::lightningAttention(qkv.data(), ref.data(), B, T_, H, D, 16, layer,
                          layers, s, SILU);
  report<bf16>(SILU ? "lightning_attn+silu fast" : "lightning_attention fast",
               dims({{"B", B},
                     {"T", T_},
                     {"H", H},
                     {"D", D},
                     {"seg", segLen},
                     {"nseg", nseg}}),
               download<bf16>(dOut, nOut), ref);
}

/// The fused single launch (D = 128) against the same CPU reference with
/// segments of segLen tokens; the status word of a wait that gave up fails the
/// case.
template <bool SILU>
void testLightningFused(long long B, long long T_, long long H, long long layer,
                        long long layers, long long segLen) {
  constexpr long long D = 128;
  const long long nIn = B * T_ * H * 3 * D, nOut = B * T_ * H * D;
  auto qkv = randomVec<bf16>(nIn);
  Dev dIn = upload<bf16>(qkv), dOut = outputBuf<bf16>(nOut);
  const long long nseg = (T_ + segLen - 1) / segLen, bh = B * H;
  const long long sf = k::lightningFusedStateFloats(D, bh, nseg);
  Dev ws(static_cast<size_t>(sf + k::lightningFusedFlagInts(bh, nseg)) * 4);
  ws.poison();
  k::LightningChunkArgs a{dIn.d(), dOut.d(), ws.d(), B,      T_,
                          H,       layer,    layers, segLen, nseg};
  launchLightningFused<SILU>(a);
  CK_LAUNCH();
  int gaveUp = 0;
  CK(cudaMemcpy(
      &gaveUp,
      reinterpret_cast<int *>(reinterpret_cast<float *>(ws.d()) + sf) +
          bh * nseg,
      4, cudaMemcpyDeviceToHost));
  std::vector<float> ref(nOut);
  cpu::Scratch s;
  cpu::lightningAttention(qkv.data(), ref.data(), B, T_, H, D, 16, layer,
                          layers, s, SILU);
  auto got = download<bf16>(dOut, nOut);
  if (gaveUp) // poison the result: the report fails the case
    got[0] = std::nanf("");
  report<bf16>(SILU ? "lightning_attn+silu fused" : "lightning_attention fused",
               dims({{"B", B},
                     {"T", T_},
                     {"H", H},
                     {"D", D},
                     {"seg", segLen},
                     {"nseg", nseg}}),
               got, ref);
}

template <typename T, int D, int BQ, int BK, int THREADS = attnThreads<T, BQ>()>
void testAttention(long long B, long long T_, long long H, long long HKV) {
  const long long nq = B * T_ * H * D, nkv = B * T_ * HKV * D;
  auto q = randomVec<T>(nq), kk = randomVec<T>(nkv), v = randomVec<T>(nkv);
  Dev dq = upload<T>(q), dk = upload<T>(kk), dv = upload<T>(v),
      dOut = outputBuf<T>(nq);
  const int smem = attnSmem<T, BQ>(D, BK, THREADS);
  CK(cudaFuncSetAttribute(gAttention<T, D, BQ, BK, THREADS>,
                          cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const double scale = 1.0 / std::sqrt(double(D));
  k::SoftmaxAttentionArgs a{dq.d(), dk.d(), dv.d(), dOut.d(), B,
                            T_,     H,      HKV,    scale};
  if (k::attentionFa3Tile(D, BQ, BK, THREADS))
    attnMaps(a);
  gAttention<T, D, BQ, BK, THREADS>
      <<<dim3((T_ + BQ - 1) / BQ, H, B), THREADS, smem>>>(a);
  CK_LAUNCH();
  std::vector<float> ref(nq);
  cpu::Scratch s;
  cpu::softmaxAttention(q.data(), kk.data(), v.data(), ref.data(), B, T_, H,
                        HKV, D, scale, s);
  report<T>("softmax_attention",
            dims({{"B", B},
                  {"T", T_},
                  {"Hq", H},
                  {"Hkv", HKV},
                  {"D", D},
                  {"tile", BQ},
                  {"threads", THREADS}}),
            download<T>(dOut, nq), ref);
}

template <typename T, bool WGMMA = false>
void testMoe(long long rows, long long hidden, long long experts,
             long long inter, long long topK) {
  auto x = randomVec<T>(rows * hidden), router = randomVec<T>(experts * hidden);
  const float ws = 1.f / std::sqrt(float(hidden)),
              wd = 1.f / std::sqrt(float(inter));
  auto w1 = randomVec<T>(experts * inter * hidden, -ws, ws);
  auto w3 = randomVec<T>(experts * inter * hidden, -ws, ws);
  auto w2 = randomVec<T>(experts * hidden * inter, -wd, wd);
  Dev dx = upload<T>(x), dr = upload<T>(router), d1 = upload<T>(w1),
      d2 = upload<T>(w2), d3 = upload<T>(w3),
      dOut = outputBuf<T>(rows * hidden);
  const cuda::MoeWorkspace layout =
      cuda::moeWorkspace(rows, hidden, experts, inter, topK, sizeof(T));
  Dev work(layout.bytes);
  work.poison();
  k::MoeArgs a{};
  a.x = dx.d();
  a.router = dr.d();
  a.w1 = d1.d();
  a.w2 = d2.d();
  a.w3 = d3.d();
  a.out = dOut.d();
  a.rows = rows;
  a.hidden = hidden;
  a.experts = experts;
  a.inter = inter;
  a.top_k = topK;
  cuda::bindMoeWorkspace(a, work.d(), layout);
  const unsigned tiles = cuda::moeGemmTiles(rows, topK, experts, 64);
  gMoeRoute<T><<<(rows + 7) / 8, 256>>>(a);
  CK_LAUNCH();
  if constexpr (WGMMA) {
    gMoeDispatch<128><<<1, 1024>>>(a);
    CK_LAUNCH();
    launchMoeWgmma(a);
    CK_LAUNCH();
  } else {
    gMoeDispatch<<<1, 1024>>>(a);
    CK_LAUNCH();
    gMoeGemm<T, true><<<dim3(tiles, (inter + 63) / 64), 256>>>(a);
    CK_LAUNCH();
    gMoeGemm<T, false><<<dim3(tiles, (hidden + 63) / 64), 256>>>(a);
    CK_LAUNCH();
  }
  gMoeCombine<T><<<rows, 256>>>(a);
  CK_LAUNCH();
  std::vector<float> ref(rows * hidden);
  cpu::Scratch s;
  cpu::moe(x.data(), router.data(), w1.data(), w2.data(), w3.data(), ref.data(),
           rows, hidden, experts, inter, topK, s);
  report<T>(WGMMA ? "moe (wgmma)" : "moe",
            dims({{"rows", rows},
                  {"H", hidden},
                  {"E", experts},
                  {"I", inter},
                  {"k", topK}}),
            download<T>(dOut, rows * hidden), ref);
}

template <typename T> void testCrossEntropy(long long rows, long long vocab) {
  auto logits = randomVec<T>(rows * vocab, -4.f, 4.f);
  std::vector<int32_t> labels(rows);
  for (long long r = 0; r < rows; ++r)
    labels[r] = r % 5 == 3 ? -100 : static_cast<int32_t>(rng() % vocab);
  Dev dl = upload<T>(logits), dlab = uploadInts(labels),
      dOut = outputBuf<float>(1);
  Dev rowLoss(cuda::crossEntropyWorkspaceBytes(rows)),
      err(sizeof(k::ErrorSlot));
  CK(cudaMemset(err.p, 0, err.bytes));
  k::CrossEntropyArgs a{dl.d(),  dlab.d(), dOut.d(), rowLoss.d(),
                        err.d(), rows,     vocab};
  gCeRows<T><<<rows, 256>>>(a);
  CK_LAUNCH();
  gCeReduce<<<1, 256>>>(a);
  CK_LAUNCH();
  std::vector<float> ref(1);
  (void)cpu::crossEntropy(logits.data(), labels.data(), ref.data(), rows, vocab,
                          rows);
  // The loss itself is f32 whatever the logits' type: hold it to the f32
  // tolerance.
  report<float>(std::string("cross_entropy/") + typeName<T>(),
                dims({{"rows", rows}, {"V", vocab}}), download<float>(dOut, 1),
                ref);
}

template <typename T>
void testLinear(cuda::LtGemm &lt, long long m, long long n, long long kk) {
  auto x = randomVec<T>(m * kk), w = randomVec<T>(n * kk);
  Dev dx = upload<T>(x), dw = upload<T>(w), dOut = outputBuf<T>(m * n);
  Status st = lt.run(nullptr, isBf16<T>() ? CUDA_R_16BF : CUDA_R_32F, m, n, kk,
                     reinterpret_cast<CUdeviceptr>(dx.p),
                     reinterpret_cast<CUdeviceptr>(dw.p),
                     reinterpret_cast<CUdeviceptr>(dOut.p));
  if (!st.isOk()) {
    std::printf("linear: %s\n", st.message().c_str());
    ++failures;
    return;
  }
  CK_LAUNCH();
  std::vector<float> ref(m * n);
  cpu::linear(x.data(), w.data(), ref.data(), m, kk, n);
  report<T>("linear (cuBLASLt)", dims({{"M", m}, {"N", n}, {"K", kk}}),
            download<T>(dOut, m * n), ref);
}

// ---- timing ----

template <typename F> double medianMs(F launch) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i)
    launch();
  CK_LAUNCH();
  std::vector<float> ms;
  for (int i = 0; i < 20; ++i) {
    CK(cudaEventRecord(a));
    launch();
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    CK(cudaGetLastError());
    float t = 0;
    CK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void benchLine(const char *what, const std::string &shape, double ms,
               double flops, double bytes) {
  std::printf("%-24s %-40s %9.3f ms", what, shape.c_str(), ms);
  if (flops > 0)
    std::printf("  %8.1f TFLOP/s", flops / ms / 1e9);
  if (bytes > 0)
    std::printf("  %8.1f GB/s", bytes / ms / 1e6);
  std::printf("\n");
  std::fflush(stdout);
}

void bench(cuda::LtGemm &lt) {
  using T = bf16;
  {
    const long long rows = 8192, n = 1024;
    auto x = randomVec<T>(rows * n), w = randomVec<T>(n);
    Dev dx = upload<T>(x), dw = upload<T>(w), dOut = outputBuf<T>(rows * n);
    k::RmsNormArgs a{dx.d(), dx.d(), dw.d(), dOut.d(), rows, n, 1e-5, 1.0, 1.0};
    double ms = medianMs([&] { gRmsNorm<T, 256, true><<<rows, 256>>>(a); });
    benchLine("add_rms_norm", dims({{"rows", rows}, {"N", n}}), ms, 0,
              3.0 * rows * n * 2);
  }
  {
    const long long m = 8192, n = 3072, kk = 1024;
    auto x = randomVec<T>(m * kk), w = randomVec<T>(n * kk);
    Dev dx = upload<T>(x), dw = upload<T>(w), dOut = outputBuf<T>(m * n);
    double ms = medianMs([&] {
      (void)lt.run(nullptr, CUDA_R_16BF, m, n, kk,
                   reinterpret_cast<CUdeviceptr>(dx.p),
                   reinterpret_cast<CUdeviceptr>(dw.p),
                   reinterpret_cast<CUdeviceptr>(dOut.p));
    });
    benchLine("linear (cuBLASLt)", dims({{"M", m}, {"N", n}, {"K", kk}}), ms,
              2.0 * m * n * kk, 0);
  }
  for (long long T_ : {4096LL, 16384LL}) {
    const long long H = 16, D = 128;
    auto qkv = randomVec<T>(T_ * H * 3 * D);
    Dev dIn = upload<T>(qkv), dOut = outputBuf<T>(T_ * H * D);
    const int smem = static_cast<int>(4 * k::lightningSmemFloats(128, 64, 32));
    CK(cudaFuncSetAttribute(gLightning<T, 128, 64, 32, false>,
                            cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    k::LightningArgs a{dIn.d(), dOut.d(), 1, T_, H, 0, 8};
    double ms = medianMs([&] {
      gLightning<T, 128, 64, 32, false><<<dim3(4, H, 1), 256, smem>>>(a);
    });
    benchLine("lightning_attention", dims({{"T", T_}, {"H", H}, {"D", D}}), ms,
              0, 4.0 * T_ * H * D * 2);
  }
  for (long long T_ : {4096LL, 16384LL, 65536LL}) {
    const long long H = 16, D = 128;
    auto qkv = randomVec<T>(T_ * H * 3 * D);
    Dev dIn = upload<T>(qkv), dOut = outputBuf<T>(T_ * H * D);
    const long long seg = k::lightningChunkSegLen(T_, H, deviceSms(), D),
                    nseg = (T_ + seg - 1) / seg;
    Dev ws(static_cast<size_t>(k::lightningChunkStateFloats(D, 1, H, nseg)) *
           4);
    k::LightningChunkArgs a{dIn.d(), dOut.d(), ws.d(), 1,   T_,
                            H,       0,        8,      seg, nseg};
    double ms = medianMs([&] { launchLightningFast<128, false>(a); });
    benchLine("lightning_attention fast", dims({{"T", T_}, {"H", H}, {"D", D}}),
              ms, 0, 4.0 * T_ * H * D * 2);
  }
  for (long long T_ : {4096LL, 16384LL}) {
    const long long H = 16, D = 128;
    auto q = randomVec<T>(T_ * H * D);
    Dev dq = upload<T>(q), dOut = outputBuf<T>(T_ * H * D);
    auto kv = randomVec<T>(2 * T_ * H * D);
    Dev dkv = upload<T>(kv);
    k::SoftmaxAttentionArgs a{
        dq.d(), dkv.d(), dkv.d() + T_ * H * D * sizeof(T), dOut.d(), 1, T_, H,
        H,      0.088};
    // The tile mm-tile picks for bf16 on sm_90a (compiler/Tile.cpp).
    constexpr int TH = attnPickThreads<T>();
    if (k::attentionFa3Tile(128, 128, 128, TH))
      attnMaps(a);
    const int smem = attnSmem<T, 128>(128, 128, TH);
    CK(cudaFuncSetAttribute(gAttention<T, 128, 128, 128, TH>,
                            cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    double ms = medianMs([&] {
      gAttention<T, 128, 128, 128, TH>
          <<<dim3((T_ + 127) / 128, H, 1), TH, smem>>>(a);
    });
    benchLine("softmax_attention causal", dims({{"T", T_}, {"H", H}, {"D", D}}),
              ms, 4.0 * T_ * T_ * D * H / 2, 0);
  }
  {
    const long long rows = 8192, hidden = 1024, experts = 8, inter = 1024,
                    topK = 2;
    auto x = randomVec<T>(rows * hidden),
         router = randomVec<T>(experts * hidden);
    auto w = randomVec<T>(experts * inter * hidden, -0.03f, 0.03f);
    Dev dx = upload<T>(x), dr = upload<T>(router), dw = upload<T>(w),
        dOut = outputBuf<T>(rows * hidden);
    const cuda::MoeWorkspace layout =
        cuda::moeWorkspace(rows, hidden, experts, inter, topK, 2);
    Dev work(layout.bytes);
    k::MoeArgs a{};
    a.x = dx.d();
    a.router = dr.d();
    a.w1 = a.w2 = a.w3 = dw.d();
    a.out = dOut.d();
    a.rows = rows;
    a.hidden = hidden;
    a.experts = experts;
    a.inter = inter;
    a.top_k = topK;
    cuda::bindMoeWorkspace(a, work.d(), layout);
    const unsigned tiles = cuda::moeGemmTiles(rows, topK, experts, 64);
    double ms = medianMs([&] {
      gMoeRoute<T><<<(rows + 7) / 8, 256>>>(a);
      gMoeDispatch<<<1, 1024>>>(a);
      gMoeGemm<T, true><<<dim3(tiles, (inter + 63) / 64), 256>>>(a);
      gMoeGemm<T, false><<<dim3(tiles, (hidden + 63) / 64), 256>>>(a);
      gMoeCombine<T><<<rows, 256>>>(a);
    });
    benchLine("moe (5 kernels)",
              dims({{"rows", rows},
                    {"H", hidden},
                    {"E", experts},
                    {"I", inter},
                    {"k", topK}}),
              ms, 2.0 * rows * topK * 3 * hidden * inter, 0);
    ms = medianMs([&] {
      gMoeRoute<T><<<(rows + 7) / 8, 256>>>(a);
      gMoeDispatch<128><<<1, 1024>>>(a);
      launchMoeWgmma(a);
      gMoeCombine<T><<<rows, 256>>>(a);
    });
    benchLine("moe (wgmma, sm_90a)",
              dims({{"rows", rows},
                    {"H", hidden},
                    {"E", experts},
                    {"I", inter},
                    {"k", topK}}),
              ms, 2.0 * rows * topK * 3 * hidden * inter, 0);
  }
}

template <typename T> void runAll(cuda::LtGemm &lt) {
  testEmbedding<T>(37, 1000, 64);
  testRmsNorm<T, false>(37, 64);
  testRmsNorm<T, true>(37, 64);
  testElementwise<T, k::kSilu>(1000);
  testElementwise<T, k::kSigmoid>(1000);
  testElementwise<T, k::kMul>(1000);
  testElementwise<T, k::kScaledAdd>(1000);
  testElementwise<T, k::kSigmoidMul>(1000);
  // n not a multiple of the vector: the scalar path.
  testElementwise<T, k::kSilu>(1003);
  testElementwise<T, k::kScaledAdd>(1003);
  testElementwise<T, k::kScaledAdd>(1000, /*same=*/true);
  testElementwise<T, k::kSigmoidMul>(1003);
  testRope<T>(2, 37, 4, 16, 16, 10000.0);
  testRope<T>(1, 41, 2, 128, 64, 1e7);
  testLightning<T, 16, 64, 16, true>(2, 37, 4, 0, 4);
  testLightning<T, 64, 64, 32, false>(1, 100, 2, 1, 3);
  if (isBf16<T>()) {
    testLightningFast<128, false>(1, 37, 2, 0, 2, 0);
    testLightningFast<128, true>(2, 150, 3, 1, 4, 64);
    testLightningFast<64, false>(1, 37, 2, 0, 2, 0);
    testLightningFast<64, true>(2, 150, 3, 1, 4, 64);
    testLightningFused<false>(1, 37, 2, 0, 2, 64);
    testLightningFused<true>(2, 150, 3, 1, 4, 64);
    testLightningFused<false>(1, 1000, 4, 3, 8, 128);
  }
  testAttention<T, 16, 64, 64>(2, 37, 4, 2);
  testAttention<T, 128, 32, 32>(1, 45, 4, 1);
  if constexpr (sizeof(T) ==
                2) { // mma.sync 128-row tiles (any target), GQA, ragged
    testAttention<T, 128, 128, 64>(2, 300, 4, 2);
    testAttention<T, 128, 128, 128>(2, 300, 4, 2);
    // the FA3 form (mm-tile's sm_90a pick): ragged, GQA, B = 2, T < 64
    testAttention<T, 128, 128, 128, 384>(2, 300, 4, 2);
    testAttention<T, 128, 128, 128, 384>(1, 37, 2, 1);
  }
  testMoe<T>(37, 64, 4, 96, 2);
  testMoe<T>(45, 60, 4, 100, 2); // K % 8 != 0: the scalar staging path
  if constexpr (sizeof(T) == 2)
    testMoe<T, true>(37, 64, 4, 96, 2);
  testCrossEntropy<T>(37, 1000);
  testLinear<T>(lt, 37, 96, 64);
  if (quick)
    return;
  testEmbedding<T>(1000, 32000, 1024);
  testRmsNorm<T, false>(300, 6144);
  testRmsNorm<T, true>(300, 6144);
  testElementwise<T, k::kSilu>(1000003);
  testElementwise<T, k::kSigmoidMul>(1000003);
  testRope<T>(2, 1000, 8, 128, 128, 1e7);
  testRope<T>(1, 333, 4, 128, 64, 1e7);
  testLightning<T, 128, 64, 32, false>(1, 300, 2, 0, 2);
  testLightning<T, 128, 32, 32, true>(2, 257, 3, 5, 8);
  testLightning<T, 64, 64, 32, true>(1, 1000, 4, 7, 8);
  if (isBf16<T>()) {
    testLightningFast<128, false>(1, 1000, 4, 3, 8, 128);
    testLightningFast<128, true>(2, 777, 2, 7, 8, 0);
    testLightningFast<128, false>(1, 4097, 4, 0, 8, 256);
    testLightningFast<128, false>(1, 2048, 16, 5, 8, 0);
    // D = 64 (the `small` preset): ragged T, B = 2, silu input, forced and
    // chosen segments.
    testLightningFast<64, false>(1, 1000, 4, 3, 8, 128);
    testLightningFast<64, true>(2, 777, 2, 7, 8, 0);
    testLightningFast<64, true>(2, 1111, 3, 2, 8, 64);
    testLightningFast<64, false>(1, 4097, 4, 0, 8, 256);
    testLightningFast<64, false>(1, 2048, 16, 5, 8, 0);
    // The fused single launch (D = 128): ragged T, B = 2, silu input, up to
    // 65 segments of one sequence (look-backs past 32 predecessors).
    testLightningFused<true>(2, 777, 2, 7, 8, 64);
    testLightningFused<false>(1, 4097, 4, 0, 8, 256);
    testLightningFused<false>(1, 4097, 4, 0, 8, 64);
    testLightningFused<false>(1, 2048, 16, 5, 8, 128);
    testLightningFused<true>(2, 3000, 3, 1, 8, 1024);
  }
  testAttention<T, 64, 64, 64>(1, 333, 8, 2);
  testAttention<T, 128, 64, 64>(2, 257, 4, 4);
  testAttention<T, 128, 64, 64>(1, 1000, 8, 1);
  if constexpr (sizeof(T) ==
                2) // mma.sync 128-row tiles and the FA3 form, longer
  {
    testAttention<T, 128, 128, 128>(1, 1000, 8, 8);
    testAttention<T, 128, 128, 128, 384>(1, 1000, 8, 8);
    testAttention<T, 128, 128, 128, 384>(1, 1000, 8, 1);
    testAttention<T, 128, 128, 128, 384>(2, 2049, 4, 2);
  }
  testMoe<T>(300, 256, 8, 512, 2);
  testMoe<T>(130, 128, 32, 256, 4);
  if constexpr (sizeof(T) == 2) { // the sm_90a wgmma form: ragged rows, H and I
                                  // not tile multiples
    testMoe<T, true>(300, 256, 8, 512, 2);
    testMoe<T, true>(130, 128, 32, 256, 4);
    testMoe<T, true>(257, 136, 8, 200, 2);
  }
  testCrossEntropy<T>(300, 32000);
  testLinear<T>(lt, 300, 1000, 256);
  testLinear<T>(lt, 1, 4096, 1024);
}

/// Uniform pseudo-random bf16 in [-1, 1) from a hash of the index: the sweep's
/// inputs reach 12.9 GB (lightning at 1M tokens), too many to draw on the host.
__global__ void gFillRandomBf16(bf16 *p, long long n, unsigned seed) {
  for (long long i = blockIdx.x * 256ll + threadIdx.x; i < n;
       i += 256ll * gridDim.x) {
    unsigned h = static_cast<unsigned>(i) * 2654435761u ^ seed ^
                 static_cast<unsigned>(i >> 32);
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] =
        k::fromF32<bf16>(static_cast<float>(h & 0xFFFFFF) / 8388608.0f - 1.0f);
  }
}
Dev randomDev(long long n, unsigned seed) {
  Dev d(static_cast<size_t>(n) * 2);
  gFillRandomBf16<<<4096, 256>>>(static_cast<bf16 *>(d.p), n, seed);
  CK_LAUNCH();
  return d;
}

/// `--bench-sweep`: the issue-5 measurements of ours, one JSON object per line
/// after "BENCH ", at the shapes tools/bench/peers.py times the peers (B=1,
/// H=16, D=128, bf16), with the forms and tiles that mm-tile picks on sm_90a.
/// tools/bench/report.py joins the two.
void benchSweep(cuda::LtGemm &lt) {
  const long long H = 16, D = 128;
  for (long long T_ : {4096LL, 16384LL, 65536LL, 262144LL, 1048576LL}) {
    Dev dIn = randomDev(T_ * H * 3 * D, 1),
        dOut(static_cast<size_t>(T_ * H * D) * 2);
    // The runtime's choice: the fused launch where lightningFusedSegLen
    // picks it, otherwise the three launches.
    const long long fseg = k::lightningFusedSegLen(T_, H, deviceSms());
    const long long seg =
        fseg > 0 ? fseg : k::lightningChunkSegLen(T_, H, deviceSms(), D);
    const long long nseg = (T_ + seg - 1) / seg;
    Dev ws(static_cast<size_t>(
               fseg > 0 ? k::lightningFusedStateFloats(D, H, nseg) +
                              k::lightningFusedFlagInts(H, nseg)
                        : k::lightningChunkStateFloats(D, 1, H, nseg)) *
           4);
    k::LightningChunkArgs a{dIn.d(), dOut.d(), ws.d(), 1,   T_,
                            H,       0,        8,      seg, nseg};
    const double ms = medianMs([&] {
      if (fseg > 0)
        launchLightningFused<false>(a);
      else
        launchLightningFast<128, false>(a);
    });
    std::printf("BENCH {\"kernel\": \"lightning_attention\", \"T\": %lld, "
                "\"H\": %lld, \"D\": %lld, "
                "\"ms\": %.5f, \"seg_len\": %lld}\n",
                T_, H, D, ms, seg);
    std::fflush(stdout);
  }
  constexpr int TH = attnPickThreads<bf16>();
  const int smem = attnSmem<bf16, 128>(128, 128, TH);
  CK(cudaFuncSetAttribute(gAttention<bf16, 128, 128, 128, TH>,
                          cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  for (long long T_ : {4096LL, 16384LL, 65536LL, 131072LL}) {
    Dev dq = randomDev(T_ * H * D, 2), dk = randomDev(T_ * H * D, 3),
        dv = randomDev(T_ * H * D, 4);
    Dev dOut(static_cast<size_t>(T_ * H * D) * 2);
    k::SoftmaxAttentionArgs a{dq.d(), dk.d(), dv.d(), dOut.d(),           1,
                              T_,     H,      H,      0.08838834764831845};
    if (k::attentionFa3Tile(128, 128, 128, TH))
      attnMaps(a);
    const double ms = medianMs([&] {
      gAttention<bf16, 128, 128, 128, TH>
          <<<dim3((T_ + 127) / 128, H, 1), TH, smem>>>(a);
    });
    std::printf("BENCH {\"kernel\": \"softmax_attention\", \"T\": %lld, \"H\": "
                "%lld, \"D\": %lld, "
                "\"ms\": %.5f}\n",
                T_, H, D, ms);
    std::fflush(stdout);
  }
  for (long long rows : {8192LL, 16384LL}) {
    const long long hidden = 1024, experts = 8, inter = 1024, topK = 2;
    Dev dx = randomDev(rows * hidden, 5), dr = randomDev(experts * hidden, 6);
    Dev dw1 = randomDev(experts * inter * hidden, 7),
        dw2 = randomDev(experts * hidden * inter, 8),
        dw3 = randomDev(experts * inter * hidden, 9);
    Dev dOut(static_cast<size_t>(rows * hidden) * 2);
    const cuda::MoeWorkspace layout =
        cuda::moeWorkspace(rows, hidden, experts, inter, topK, 2);
    Dev work(layout.bytes);
    k::MoeArgs a{};
    a.x = dx.d();
    a.router = dr.d();
    a.w1 = dw1.d();
    a.w2 = dw2.d();
    a.w3 = dw3.d();
    a.out = dOut.d();
    a.rows = rows;
    a.hidden = hidden;
    a.experts = experts;
    a.inter = inter;
    a.top_k = topK;
    cuda::bindMoeWorkspace(a, work.d(), layout);
    auto moe = [&] {
      gMoeRoute<bf16><<<(rows + 7) / 8, 256>>>(a);
      gMoeDispatch<128><<<1, 1024>>>(a);
      launchMoeWgmma(a);
      gMoeCombine<bf16><<<rows, 256>>>(a);
    };
    // The dense reference of equal FLOPs, in this process: one SwiGLU FFN
    // over all rows·k slots through cuBLASLt (x[M,H]·W13[2I,H]ᵀ, then
    // h[M,I]·W2[H,I]ᵀ), timed alternately with ours (3 rounds, medians), so
    // both see the same clocks.
    const long long M = rows * topK;
    Dev xs = randomDev(M * hidden, 10), hs = randomDev(M * inter, 11),
        gu(static_cast<size_t>(M * 2 * inter) * 2),
        dn(static_cast<size_t>(M * hidden) * 2);
    auto cu = [](const Dev &d) { return static_cast<CUdeviceptr>(d.d()); };
    auto ok = [](const Status &st) {
      if (!st.isOk()) {
        std::printf("FAIL: dense reference: %s\n", st.message().c_str());
        std::exit(1);
      }
    };
    auto dense = [&] {
      ok(lt.run(nullptr, CUDA_R_16BF, M, 2 * inter, hidden, cu(xs), cu(dw1),
                cu(gu)));
      ok(lt.run(nullptr, CUDA_R_16BF, M, hidden, inter, cu(hs), cu(dw2),
                cu(dn)));
    };
    std::vector<double> oursMs, denseMs;
    for (int round = 0; round < 3; ++round) {
      oursMs.push_back(medianMs(moe));
      denseMs.push_back(medianMs(dense));
    }
    std::sort(oursMs.begin(), oursMs.end());
    std::sort(denseMs.begin(), denseMs.end());
    std::printf("BENCH {\"kernel\": \"moe\", \"shape\": \"%lld tokens, H=%lld, "
                "E=%lld, I=%lld, top-%lld\", "
                "\"ms\": %.5f, \"flops\": %.6e, \"dense_ms\": %.5f}\n",
                rows, hidden, experts, inter, topK, oursMs[1],
                2.0 * rows * topK * 3 * hidden * inter, denseMs[1]);
    std::fflush(stdout);
  }
}

} // namespace

int main(int argc, char **argv) {
  bool benchOnly = false, sweep = false;
  for (int i = 1; i < argc; ++i) {
    quick |= std::strcmp(argv[i], "--quick") == 0;
    benchOnly |= std::strcmp(argv[i], "--bench") == 0;
    sweep |= std::strcmp(argv[i], "--bench-sweep") == 0;
  }
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("SKIPPED: no CUDA device; the GPU kernel tests need one\n");
    return 77;
  }
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d), %d SMs\n", prop.name, prop.major,
              prop.minor, prop.multiProcessorCount);
  void *ws = nullptr;
  CK(cudaMalloc(&ws, 32 << 20));
  auto lt = cuda::LtGemm::create(reinterpret_cast<CUdeviceptr>(ws), 32 << 20);
  if (!lt.isOk()) {
    std::printf("FAIL: %s\n", lt.status().message().c_str());
    return 1;
  }
  if (sweep) {
    benchSweep(*lt.value());
    return 0;
  }
  if (benchOnly) {
    bench(*lt.value());
    return 0;
  }
  runAll<float>(*lt.value());
  runAll<bf16>(*lt.value());
  lt.value().reset();
  cudaFree(ws);
  std::printf("kernel tests: %d of %d cases passed%s\n", cases - failures,
              cases, failures ? "  <== FAILURES" : "");
  return failures ? 1 : 0;
}
