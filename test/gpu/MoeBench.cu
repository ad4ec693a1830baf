// MoE layer: correctness and speed of the bf16 forms of kernels/moe.cuh in one
// run.
//   1. the sm_90a wgmma form (tile 128×128×64) against the CPU reference
//   (runtime/cpu) at small
//      and ragged shapes, outputs and workspace poisoned first (bf16: ‖out −
//      ref‖/‖ref‖ ≤ 1e-2);
//   2. the wgmma form against the mma.sync form (tile 64×64×32, the
//   pre-existing path) at the
//      benchmark shapes, on fresh random data (rel. difference ≤ 1e-2, no NaN);
//   3. the whole layer (route, dispatch, gate/up, down, combine) timed with
//   CUDA events, median
//      of 20 after 3 warm-ups, for both forms, plus each kernel of the wgmma
//      form.
// FLOPs counted as 2·(rows·k)·(H·2I + I·H). The cuBLAS peer is timed by
// moe_peer.py in the same device call. Build: see bench/results/moe.md.
#include "kernels/moe.cuh"
#include "runtime/cpu/CpuKernels.h"
#include "runtime/cuda/KernelLaunch.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace mm;

#define CK(call)                                                               \
  do {                                                                         \
    cudaError_t e_ = (call);                                                   \
    if (e_ != cudaSuccess) {                                                   \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__,       \
                   #call, cudaGetErrorString(e_));                             \
      std::exit(1);                                                            \
    }                                                                          \
  } while (0)

namespace {

using k::bf16;
constexpr int kThreads = 256;

template <int BM> __global__ void __launch_bounds__(256) gRoute(k::MoeArgs a) {
  k::moeRoute<bf16, 256>(a);
}
template <int BM>
__global__ void __launch_bounds__(1024) gDispatch(k::MoeArgs a) {
  k::moeDispatch<BM, 1024>(a);
}
template <int BM, int BN, int BK, bool UP>
__global__ void
__launch_bounds__(k::moeWgmmaTiles(BM, BN, BK) ? k::moeWgmmaThreads() : 256, 1)
    gGemm(k::MoeArgs a) {
  k::moeGemm<bf16, BM, BN, BK, 256, UP>(a);
}
__global__ void __launch_bounds__(256) gCombine(k::MoeArgs a) {
  k::moeCombine<bf16, 256>(a);
}

__global__ void fillRandom(unsigned short *p, long long n, unsigned seed,
                           float scale) {
  for (long long i = blockIdx.x * 256ll + threadIdx.x; i < n;
       i += 256ll * gridDim.x) {
    unsigned h = static_cast<unsigned>(i) * 2654435761u ^ seed * 0x9e3779b9u;
    h ^= h >> 15;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    const float v = ((h & 0xffffff) / 16777216.f * 2.f - 1.f) * scale;
    p[i] = static_cast<unsigned short>(__float_as_uint(v) >> 16);
  }
}

struct Shape {
  long long rows, hidden, experts, inter, topK;
};
std::string str(const Shape &s) {
  char b[128];
  std::snprintf(b, sizeof b, "rows=%lld H=%lld E=%lld I=%lld k=%lld", s.rows,
                s.hidden, s.experts, s.inter, s.topK);
  return b;
}
double flops(const Shape &s) {
  return 2.0 * s.rows * s.topK *
         (s.hidden * 2.0 * s.inter + s.inter * s.hidden);
}

/// Device buffers of one MoE problem and its workspace.
struct Problem {
  Shape s;
  unsigned short *x, *router, *w1, *w2, *w3, *out;
  void *work;
  k::MoeArgs a{};
  explicit Problem(const Shape &sh) : s(sh) {
    auto alloc = [](long long n) {
      unsigned short *p;
      CK(cudaMalloc(&p, n * 2));
      return p;
    };
    x = alloc(s.rows * s.hidden);
    router = alloc(s.experts * s.hidden);
    w1 = alloc(s.experts * s.inter * s.hidden);
    w3 = alloc(s.experts * s.inter * s.hidden);
    w2 = alloc(s.experts * s.hidden * s.inter);
    out = alloc(s.rows * s.hidden);
    const auto layout =
        cuda::moeWorkspace(s.rows, s.hidden, s.experts, s.inter, s.topK, 2);
    CK(cudaMalloc(&work, layout.bytes));
    CK(cudaMemset(work, 0xff, layout.bytes));
    a.x = reinterpret_cast<k::dptr>(x);
    a.router = reinterpret_cast<k::dptr>(router);
    a.w1 = reinterpret_cast<k::dptr>(w1);
    a.w2 = reinterpret_cast<k::dptr>(w2);
    a.w3 = reinterpret_cast<k::dptr>(w3);
    a.out = reinterpret_cast<k::dptr>(out);
    a.rows = s.rows;
    a.hidden = s.hidden;
    a.experts = s.experts;
    a.inter = s.inter;
    a.top_k = s.topK;
    cuda::bindMoeWorkspace(a, reinterpret_cast<uint64_t>(work), layout);
  }
  ~Problem() {
    for (void *p : {(void *)x, (void *)router, (void *)w1, (void *)w2,
                    (void *)w3, (void *)out, work})
      cudaFree(p);
  }
  void randomize(unsigned seed) {
    auto fill = [&](unsigned short *p, long long n, float scale) {
      fillRandom<<<1024, 256>>>(p, n, seed++, scale);
      CK(cudaGetLastError());
    };
    fill(x, s.rows * s.hidden, 1.f);
    fill(router, s.experts * s.hidden, 1.f);
    fill(w1, s.experts * s.inter * s.hidden, 1.f / std::sqrt(float(s.hidden)));
    fill(w3, s.experts * s.inter * s.hidden, 1.f / std::sqrt(float(s.hidden)));
    fill(w2, s.experts * s.hidden * s.inter, 1.f / std::sqrt(float(s.inter)));
    CK(cudaDeviceSynchronize());
  }
  std::vector<float> download(const unsigned short *p, long long n) const {
    std::vector<unsigned short> h(n);
    CK(cudaMemcpy(h.data(), p, n * 2, cudaMemcpyDeviceToHost));
    std::vector<float> f(n);
    for (long long i = 0; i < n; ++i) {
      unsigned u = static_cast<unsigned>(h[i]) << 16;
      std::memcpy(&f[i], &u, 4);
    }
    return f;
  }
};

/// The five kernels of one form; `stage` (0..4) launches one kernel only, -1
/// all.
int numSMs = 132;
template <int BM, int BN, int BK>
void runLayer(const k::MoeArgs &a, int stage = -1) {
  const unsigned tiles = cuda::moeGemmTiles(a.rows, a.top_k, a.experts, BM);
  constexpr bool wg = k::moeWgmmaTiles(BM, BN, BK);
  const unsigned smem = wg ? unsigned(k::moeWgmmaSmemBytes()) : 0;
  const unsigned gemmThreads = wg ? k::moeWgmmaThreads() : kThreads;
  const dim3 gridUp =
      wg ? dim3(unsigned(k::moeWgmmaGrid(numSMs, tiles, a.inter, true)))
         : dim3(tiles, (a.inter + BN - 1) / BN);
  const dim3 gridDown =
      wg ? dim3(unsigned(k::moeWgmmaGrid(numSMs, tiles, a.hidden, false)))
         : dim3(tiles, (a.hidden + BN - 1) / BN);
  if (stage < 0 || stage == 0)
    gRoute<BM><<<(a.rows + 7) / 8, kThreads>>>(a);
  if (stage < 0 || stage == 1)
    gDispatch<BM><<<1, 1024>>>(a);
  if (stage < 0 || stage == 2)
    gGemm<BM, BN, BK, true><<<gridUp, gemmThreads, smem>>>(a);
  if (stage < 0 || stage == 3)
    gGemm<BM, BN, BK, false><<<gridDown, gemmThreads, smem>>>(a);
  if (stage < 0 || stage == 4)
    gCombine<<<a.rows, kThreads>>>(a);
  CK(cudaGetLastError());
}
using LayerFn = void (*)(const k::MoeArgs &, int);
constexpr LayerFn kWgmma = runLayer<128, 128, 64>, kMma = runLayer<64, 64, 32>;

double relErr(const std::vector<float> &out, const std::vector<float> &ref,
              bool &nan) {
  double num = 0, den = 0;
  nan = false;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i]))
      nan = true;
    num += (double(out[i]) - ref[i]) * (double(out[i]) - ref[i]);
    den += double(ref[i]) * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

int failures = 0;

void checkVsCpu(const Shape &s, unsigned seed) {
  Problem P(s);
  P.randomize(seed);
  CK(cudaMemset(P.out, 0xff, s.rows * s.hidden * 2));
  kWgmma(P.a, -1);
  CK(cudaDeviceSynchronize());
  auto out = P.download(P.out, s.rows * s.hidden);
  auto x = P.download(P.x, s.rows * s.hidden),
       r = P.download(P.router, s.experts * s.hidden),
       w1 = P.download(P.w1, s.experts * s.inter * s.hidden),
       w2 = P.download(P.w2, s.experts * s.hidden * s.inter),
       w3 = P.download(P.w3, s.experts * s.inter * s.hidden);
  std::vector<float> ref(s.rows * s.hidden);
  cpu::Scratch scratch;
  cpu::moe(x.data(), r.data(), w1.data(), w2.data(), w3.data(), ref.data(),
           s.rows, s.hidden, s.experts, s.inter, s.topK, scratch);
  bool nan;
  const double e = relErr(out, ref, nan);
  const bool ok = !nan && e <= 1e-2;
  failures += !ok;
  std::printf("check wgmma vs cpu   %-40s rel_err %.3e %s\n", str(s).c_str(), e,
              ok    ? "PASS"
              : nan ? "FAIL (NaN/unwritten)"
                    : "FAIL");
}

template <typename F> double medianMs(F &&f) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i)
    f();
  std::vector<float> t;
  for (int i = 0; i < 20; ++i) {
    CK(cudaEventRecord(a));
    f();
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms;
    CK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  std::sort(t.begin(), t.end());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return t[t.size() / 2];
}

void bench(const Shape &s) {
  Problem P(s);
  P.randomize(1234 + unsigned(s.rows + s.experts));
  // Correctness at this shape: the wgmma form against the mma.sync form.
  CK(cudaMemset(P.out, 0xff, s.rows * s.hidden * 2));
  kMma(P.a, -1);
  CK(cudaDeviceSynchronize());
  auto ref = P.download(P.out, s.rows * s.hidden);
  CK(cudaMemset(P.out, 0xff, s.rows * s.hidden * 2));
  kWgmma(P.a, -1);
  CK(cudaDeviceSynchronize());
  auto out = P.download(P.out, s.rows * s.hidden);
  bool nan;
  const double e = relErr(out, ref, nan);
  const bool ok = !nan && e <= 1e-2;
  failures += !ok;
  std::printf("check wgmma vs mma   %-40s rel_diff %.3e %s\n", str(s).c_str(),
              e, ok ? "PASS" : "FAIL");
  const double f = flops(s);
  const double tOld = medianMs([&] { kMma(P.a, -1); });
  const double tNew = medianMs([&] { kWgmma(P.a, -1); });
  double part[5];
  for (int st = 0; st < 5; ++st)
    part[st] = medianMs([&] { kWgmma(P.a, st); });
  std::printf("time  %-40s mma.sync %.3f ms (%.0f TFLOP/s) | wgmma %.3f ms "
              "(%.0f TFLOP/s) | "
              "route %.3f dispatch %.3f gate_up %.3f (%.0f) down %.3f (%.0f) "
              "combine %.3f ms\n",
              str(s).c_str(), tOld, f / tOld * 1e-9, tNew, f / tNew * 1e-9,
              part[0], part[1], part[2], f * 2 / 3 / part[2] * 1e-9, part[3],
              f / 3 / part[3] * 1e-9, part[4]);
  std::printf("RESULT %lld %lld %lld %lld %lld %.4f %.4f\n", s.rows, s.hidden,
              s.experts, s.inter, s.topK, tNew, tOld);
}

} // namespace

int main(int argc, char **argv) {
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d), %d SMs\n", prop.name, prop.major,
              prop.minor, prop.multiProcessorCount);
  numSMs = prop.multiProcessorCount;
  CK(cudaFuncSetAttribute(gGemm<128, 128, 64, true>,
                          cudaFuncAttributeMaxDynamicSharedMemorySize,
                          int(k::moeWgmmaSmemBytes())));
  CK(cudaFuncSetAttribute(gGemm<128, 128, 64, false>,
                          cudaFuncAttributeMaxDynamicSharedMemorySize,
                          int(k::moeWgmmaSmemBytes())));
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  // Small and ragged: rows not a multiple of 128, I and H not multiples of 64
  // or 128, E = 32.
  checkVsCpu({37, 64, 4, 96, 2}, 1);
  checkVsCpu({300, 256, 8, 512, 2}, 2);
  checkVsCpu({130, 128, 32, 256, 4}, 3);
  checkVsCpu({257, 136, 8, 200, 2}, 4);
  checkVsCpu({1000, 512, 8, 256, 2}, 5);
  if (!quick)
    for (Shape s :
         {Shape{8192, 1024, 8, 1024, 2}, Shape{16384, 1024, 8, 1024, 2},
          Shape{8192, 1024, 32, 1024, 2}, Shape{16384, 1024, 32, 1024, 2}})
      bench(s);
  std::printf("moe bench: %s\n", failures ? "FAILURES" : "all checks passed");
  return failures ? 1 : 0;
}
