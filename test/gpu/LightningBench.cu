// Standalone check and benchmark of the lightning attention kernels
// (kernels/lightning_attention.cuh): the chunk-parallel bf16 fast path (three
// launches) against a float64 CPU reference (ragged T, several segment lengths,
// silu input, B > 1) and against the sequential kernel at long T; then times
// both next to a device-to-device copy (the memory ceiling). Head dim 128
// (default) or 64
// (`--d 64`, the `small` preset), with the launch bounds mm-codegen-cuda emits.
// Build (sm_90a):
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I.
//   test/gpu/LightningBench.cu
// Run: ./a.out [--d 64|128] [--no-check] [--max-t N] [--t T1,T2,..]
// [--seq-max-t N] [--no-sweep] [--var N] [--fused SEG]. Exit 1 on any failed
// check.
#include "kernels/lightning_attention.cuh"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace mm;
using k::bf16;

#define CK(call)                                                               \
  do {                                                                         \
    cudaError_t e_ = (call);                                                   \
    if (e_ != cudaSuccess) {                                                   \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__,       \
                   #call, cudaGetErrorString(e_));                             \
      std::exit(1);                                                            \
    }                                                                          \
  } while (0)

constexpr int kStatesStages = 3, kOutStages = 3;

template <int D, bool SILU>
__global__ void __launch_bounds__(256, D == 64 ? 4 : 2)
    gStates(k::LightningChunkArgs a) {
  extern __shared__ __align__(16) unsigned char smem[];
  k::lightningChunkStates<D, kStatesStages, SILU>(a, smem);
}
template <int D>
__global__ void __launch_bounds__(256) gScan(k::LightningChunkArgs a) {
  k::lightningChunkScan<D>(a);
}
template <int D, bool SILU, int VAR = k::kLightningWgmmaVar>
__global__ void __launch_bounds__(256, D == 64 ? 2 : 1)
    gOut(k::LightningChunkArgs a) {
  extern __shared__ __align__(16) unsigned char smem[];
  k::lightningChunkOut<D, kOutStages, SILU, VAR>(a, smem);
}
template <bool SILU, int VAR = k::kLightningWgmmaVar>
__global__ void __launch_bounds__(256, 1) gFused(k::LightningChunkArgs a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(16) unsigned char smem[];
  k::lightningChunkFused<kOutStages, SILU, VAR>(a, smem);
#endif
}
/// --fused N: D = 128 through the fused single launch with segments of N
/// tokens (0: the three launches; -1: the runtime's choice between the two,
/// lightningFusedSegLen).
long long gFusedSeg = 0;
/// --var N: the form of the sm_90a D = 128 output launch
/// (lightningChunkOutWgmma VAR; -1 = the default).
int gVar = -1;
template <int D, bool SILU, int VAR>
void launchOutVar(const k::LightningChunkArgs &a, int smem) {
  static bool once = false;
  if (!once) {
    CK(cudaFuncSetAttribute(gOut<D, SILU, VAR>,
                            cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    once = true;
  }
  gOut<D, SILU, VAR>
      <<<dim3(static_cast<unsigned>(a.nseg), static_cast<unsigned>(a.heads),
              static_cast<unsigned>(a.batch)),
         256, smem>>>(a);
}
template <int D, bool SILU>
void launchOut(const k::LightningChunkArgs &a, int smem) {
  if constexpr (D != 128)
    return launchOutVar<D, SILU, k::kLightningWgmmaVar>(a, smem);
  switch (gVar) {
  case 0:
    return launchOutVar<D, SILU, 0>(a, smem);
  case 1:
    return launchOutVar<D, SILU, 1>(a, smem);
  case 2:
    return launchOutVar<D, SILU, 2>(a, smem);
  case 3:
    return launchOutVar<D, SILU, 3>(a, smem);
  case 7:
    return launchOutVar<D, SILU, 7>(a, smem);
  case 10:
    return launchOutVar<D, SILU, 10>(a, smem);
  case 11:
    return launchOutVar<D, SILU, 11>(a, smem);
  case 26:
    return launchOutVar<D, SILU, 26>(a, smem);
  case 27:
    return launchOutVar<D, SILU, 27>(a, smem);
  case 31:
    return launchOutVar<D, SILU, 31>(a, smem);
  default:
    return launchOutVar<D, SILU, k::kLightningWgmmaVar>(a, smem);
  }
}
/// The sequential kernel with the tiles mm-tile picks for bf16 (block 64, dv
/// 32).
template <int D>
__global__ void __launch_bounds__(256) gOld(k::LightningArgs a) {
  extern __shared__ float smemf[];
  k::lightningAttention<bf16, D, 64, 32, 256, false>(a, smemf);
}
template <int D> void runOld(const k::LightningArgs &o) {
  const int smem = static_cast<int>(4 * k::lightningSmemFloats(D, 64, 32));
  static bool once = false;
  if (!once) {
    CK(cudaFuncSetAttribute(gOld<D>,
                            cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    once = true;
  }
  gOld<D><<<dim3(D / 32, static_cast<unsigned>(o.heads),
                 static_cast<unsigned>(o.batch)),
            256, smem>>>(o);
}

/// Deterministic uniform [-1, 1) bf16 from a hash of the index.
__global__ void gFill(bf16 *p, long long n, unsigned long long seed) {
  for (long long i = blockIdx.x * 1ll * blockDim.x + threadIdx.x; i < n;
       i += 1ll * gridDim.x * blockDim.x) {
    unsigned long long x = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    const float u = static_cast<float>(x >> 40) / 16777216.f * 2.f - 1.f;
    p[i] = k::fromF32<bf16>(u);
  }
}

int numSms() {
  int dev = 0, n = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  return n;
}

template <int D> struct Fast {
  k::LightningChunkArgs a{};
  float *ws = nullptr;
  bool silu = false;
  bool fused = false;
  long long flagInts = 0, stateFloats = 0;
  Fast(const bf16 *qkv, bf16 *out, long long B, long long T, long long H,
       long long layer, long long layers, bool silu_, long long segLen = 0)
      : silu(silu_) {
    // --fused -1: the runtime's choice (lightningFusedSegLen).
    const long long fseg =
        gFusedSeg < 0 ? k::lightningFusedSegLen(T, B * H, numSms()) : gFusedSeg;
    fused = D == 128 && fseg > 0;
    if (segLen <= 0)
      segLen = fused ? fseg : k::lightningChunkSegLen(T, B * H, numSms(), D);
    const long long nseg = (T + segLen - 1) / segLen;
    flagInts = k::lightningFusedFlagInts(B * H, nseg);
    stateFloats = fused ? k::lightningFusedStateFloats(D, B * H, nseg)
                        : k::lightningChunkStateFloats(D, B, H, nseg);
    CK(cudaMalloc(&ws, (std::max<long long>(1, stateFloats) + flagInts) * 4));
    a = k::LightningChunkArgs{reinterpret_cast<k::dptr>(qkv),
                              reinterpret_cast<k::dptr>(out),
                              reinterpret_cast<k::dptr>(ws),
                              B,
                              T,
                              H,
                              layer,
                              layers,
                              segLen,
                              nseg};
  }
  ~Fast() { cudaFree(ws); }
  static constexpr int ss =
      static_cast<int>(k::lightningChunkStatesSmem(D, kStatesStages));
  static constexpr int so =
      static_cast<int>(k::lightningChunkOutSmem(D, kOutStages));
  template <bool S> static void setup() {
    static bool once = false;
    if (!once) {
      CK(cudaFuncSetAttribute(gStates<D, S>,
                              cudaFuncAttributeMaxDynamicSharedMemorySize, ss));
      once = true;
    }
  }
  int *flags() const { return reinterpret_cast<int *>(ws + stateFloats); }
  template <bool S, int VAR> void runFusedVar() {
    static bool once = false;
    if (!once) {
      CK(cudaFuncSetAttribute(gFused<S, VAR>,
                              cudaFuncAttributeMaxDynamicSharedMemorySize, so));
      once = true;
    }
    CK(cudaMemsetAsync(flags(), 0, flagInts * 4));
    gFused<S, VAR>
        <<<static_cast<unsigned>(a.nseg * a.heads * a.batch), 256, so>>>(a);
  }
  template <bool S> void runFused() {
    switch (gVar) {
    case 3:
      return runFusedVar<S, 3>();
    case 11:
      return runFusedVar<S, 11>();
    case 27:
      return runFusedVar<S, 27>();
    default:
      return runFusedVar<S, k::kLightningWgmmaVar>();
    }
  }
  /// The fused launch's error flag (a prefix wait that gave up).
  bool fusedError() const {
    int e = 0;
    if (fused)
      CK(cudaMemcpy(&e, flags() + a.batch * a.heads * a.nseg, 4,
                    cudaMemcpyDeviceToHost));
    return e != 0;
  }
  template <bool S> void run() {
    if (fused)
      return runFused<S>();
    setup<S>();
    const unsigned H = static_cast<unsigned>(a.heads),
                   B = static_cast<unsigned>(a.batch);
    if (a.nseg > 1) {
      gStates<D, S>
          <<<dim3(static_cast<unsigned>(a.nseg - 1), H, B), 256, ss>>>(a);
      gScan<D><<<dim3(k::lightningChunkScanBlocks(D), H, B), 256>>>(a);
    }
    launchOut<D, S>(a, so);
  }
  void run() { silu ? run<true>() : run<false>(); }
};

float bf2f(unsigned short b) {
  unsigned u = static_cast<unsigned>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
std::vector<float> download(const bf16 *p, size_t n) {
  std::vector<unsigned short> h(n);
  CK(cudaMemcpy(h.data(), p, n * 2, cudaMemcpyDeviceToHost));
  std::vector<float> f(n);
  for (size_t i = 0; i < n; ++i)
    f[i] = bf2f(h[i]);
  return f;
}

/// float64 reference: S ← λS + kᵀv, o = q·S, per token (one thread per (b, h)).
std::vector<double> reference(const std::vector<float> &qkv, long long B,
                              long long T, long long H, long long D,
                              long long layer, long long layers, bool silu) {
  std::vector<double> out(B * T * H * D);
  auto work = [&](long long bh) {
    const long long b = bh / H, h = bh % H;
    const double s =
        std::pow(std::pow(2.0, -8.0 / double(H)), double(h + 1)) *
        (1.0 - double(layer) / (double(layers) - 1.0 + 1e-5) + 1e-5);
    const double lam = std::exp(-s);
    std::vector<double> S(D * D, 0.0), q(D), kk(D), v(D);
    for (long long t = 0; t < T; ++t) {
      const float *row = qkv.data() + ((b * T + t) * H + h) * 3 * D;
      for (long long d = 0; d < D; ++d) {
        double x[3] = {row[d], row[D + d], row[2 * D + d]};
        if (silu)
          for (double &y : x)
            y = y / (1.0 + std::exp(-y));
        q[d] = x[0], kk[d] = x[1], v[d] = x[2];
      }
      for (long long r = 0; r < D; ++r)
        for (long long c = 0; c < D; ++c)
          S[r * D + c] = lam * S[r * D + c] + kk[r] * v[c];
      double *o = out.data() + ((b * T + t) * H + h) * D;
      for (long long c = 0; c < D; ++c)
        o[c] = 0;
      for (long long r = 0; r < D; ++r)
        for (long long c = 0; c < D; ++c)
          o[c] += q[r] * S[r * D + c];
    }
  };
  std::vector<std::thread> th;
  const long long n = B * H;
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned w = 0; w < hw; ++w)
    th.emplace_back([&, w] {
      for (long long i = w; i < n; i += hw)
        work(i);
    });
  for (auto &x : th)
    x.join();
  return out;
}

int failures = 0;
bool sweep = true; // --no-sweep: no other segment lengths
double relErr(const std::vector<float> &got, const std::vector<double> &ref,
              bool &bad) {
  double num = 0, den = 0;
  bad = false;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i]))
      bad = true;
    num += (got[i] - ref[i]) * (got[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

template <int D>
void check(long long B, long long T, long long H, long long layer,
           long long layers, bool silu, long long segLen) {
  const long long nIn = B * T * H * 3 * D, nOut = B * T * H * D;
  bf16 *in, *out;
  CK(cudaMalloc(&in, nIn * 2));
  CK(cudaMalloc(&out, nOut * 2));
  gFill<<<1024, 256>>>(in, nIn, 0x1234567ull + T * 31 + B * 7 + layer);
  CK(cudaMemset(out, 0xff, nOut * 2)); // NaN poison
  Fast<D> f(in, out, B, T, H, layer, layers, silu, segLen);
  f.run();
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
  auto got = download(out, nOut);
  auto qkv = download(in, nIn);
  auto ref = reference(qkv, B, T, H, D, layer, layers, silu);
  bool bad;
  const double e = relErr(got, ref, bad);
  const bool fe = f.fusedError();
  const bool ok = !bad && e <= 1e-2 && !fe;
  failures += !ok;
  std::printf("%-4s fast vs f64  D=%d B=%lld T=%lld H=%lld layer=%lld/%lld "
              "silu=%d seg=%lld nseg=%lld: rel err %.2e%s%s\n",
              ok ? "ok" : "FAIL", D, B, T, H, layer, layers, silu, f.a.seg_len,
              f.a.nseg, e, bad ? " (non-finite)" : "",
              fe ? " (fused wait gave up)" : "");
  CK(cudaFree(in));
  CK(cudaFree(out));
}

template <typename F> double medianMs(F &&f, int reps = 20) {
  for (int i = 0; i < 3; ++i)
    f();
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    CK(cudaEventRecord(a));
    f();
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float x;
    CK(cudaEventElapsedTime(&x, a, b));
    ms.push_back(x);
  }
  CK(cudaGetLastError());
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

template <int D>
int benchMain(bool doCheck, long long maxT, const std::vector<long long> &ts,
              long long seqMaxT) {
  if (doCheck) {
    check<D>(1, 37, 2, 0, 2, false, 0);
    check<D>(2, 300, 3, 1, 4, true, 0);
    check<D>(1, 1000, 4, 3, 8, false, 128);
    check<D>(2, 777, 2, 7, 8, true, 64);
    check<D>(1, 4097, 4, 0, 8, false, 0);
    check<D>(1, 4097, 4, 0, 8, false, 256);
    check<D>(1, 3000, 16, 5, 8, false, 0);
    check<D>(1, 2048, 2, 7, 8, false, 64); // last layer: s ≈ 1e-5·h, no decay
  }
  // Long T: fast against the sequential kernel (fp32 state, fp32 products) on
  // the same data.
  const long long H = 16;
  const long long maxIn = maxT * H * 3 * D, maxOut = maxT * H * D;
  bf16 *in, *out, *out2;
  CK(cudaMalloc(&in, maxIn * 2));
  CK(cudaMalloc(&out, maxOut * 2));
  CK(cudaMalloc(&out2, maxOut * 2));
  gFill<<<4096, 256>>>(in, maxIn, 0xabcdefull);
  CK(cudaGetLastError());
  if (doCheck) {
    for (long long T : {65536ll, 16384ll + 37}) {
      if (T > maxT)
        continue;
      CK(cudaMemset(out, 0xff, T * H * D * 2));
      CK(cudaMemset(out2, 0xff, T * H * D * 2));
      Fast<D> f(in, out, 1, T, H, 1, 8, false);
      f.run();
      k::LightningArgs o{reinterpret_cast<k::dptr>(in),
                         reinterpret_cast<k::dptr>(out2),
                         1,
                         T,
                         H,
                         1,
                         8};
      runOld<D>(o);
      CK(cudaGetLastError());
      CK(cudaDeviceSynchronize());
      auto a = download(out, T * H * D), b = download(out2, T * H * D);
      std::vector<double> bd(b.begin(), b.end());
      bool bad;
      const double e = relErr(a, bd, bad);
      const bool ok = !bad && e <= 1e-2 && !f.fusedError();
      failures += !ok;
      std::printf("%-4s fast vs sequential kernel D=%d T=%lld H=16 seg=%lld "
                  "nseg=%lld: rel err %.2e\n",
                  ok ? "ok" : "FAIL", D, T, f.a.seg_len, f.a.nseg, e);
    }
  }
  // Copy ceiling: 2 GB read + 2 GB written.
  double copyGBs;
  {
    const size_t bytes = 2ull << 30;
    void *x, *y;
    CK(cudaMalloc(&x, bytes));
    CK(cudaMalloc(&y, bytes));
    CK(cudaMemset(x, 1, bytes));
    double ms = medianMs(
        [&] { CK(cudaMemcpyAsync(y, x, bytes, cudaMemcpyDeviceToDevice)); },
        10);
    copyGBs = 2.0 * bytes / ms / 1e6;
    CK(cudaFree(x));
    CK(cudaFree(y));
  }
  std::printf("copy: %.0f GB/s (read + written)\n", copyGBs);
  std::printf("D=%d B=1 H=16 layer 0 of 8\n", D);
  std::printf("%8s %6s %6s %10s %10s %9s %9s %10s %8s\n", "T", "seg", "nseg",
              "fast ms", "GB/s", "%copy", "floor ms", "seq ms", "speedup");
  for (long long T : ts) {
    if (T > maxT)
      continue;
    Fast<D> f(in, out, 1, T, H, 0, 8, false);
    const double ms = medianMs([&] { f.run(); });
    double seq = 0;
    if (T <= seqMaxT) {
      k::LightningArgs o{reinterpret_cast<k::dptr>(in),
                         reinterpret_cast<k::dptr>(out2),
                         1,
                         T,
                         H,
                         0,
                         8};
      seq = medianMs([&] { runOld<D>(o); }, 10);
    }
    const double bytes = 4.0 * T * H * D * 2, gbs = bytes / ms / 1e6;
    std::printf("%8lld %6lld %6lld %10.3f %10.0f %8.1f%% %9.3f %10.3f %8s\n", T,
                f.a.seg_len, f.a.nseg, ms, gbs, 100.0 * gbs / copyGBs,
                bytes / copyGBs / 1e6, seq,
                seq > 0 ? (std::to_string(seq / ms).substr(0, 5) + "x").c_str()
                        : "-");
    if (f.fusedError()) {
      std::printf("FAIL fused wait gave up at T=%lld\n", T);
      ++failures;
    }
    // Per-launch split at this T (states+scan vs out).
    if (f.a.nseg > 1 && !f.fused) {
      f.template setup<false>();
      double m1 = medianMs([&] {
        gStates<D, false><<<dim3(static_cast<unsigned>(f.a.nseg - 1), H, 1),
                            256, Fast<D>::ss>>>(f.a);
      });
      double m2 = medianMs([&] {
        gScan<D><<<dim3(k::lightningChunkScanBlocks(D), H, 1), 256>>>(f.a);
      });
      double m3 = medianMs([&] { launchOut<D, false>(f.a, Fast<D>::so); });
      std::printf("         split: states %.3f ms, scan %.3f ms, out %.3f ms\n",
                  m1, m2, m3);
    }
    // Other segment lengths at this T (the cost model's choice is the row
    // above).
    for (long long seg :
         {128ll, 256ll, 512ll, 1024ll, 2048ll, 4096ll, 8192ll, 16384ll}) {
      if (gFusedSeg != 0 && seg < 512)
        continue;
      if (!sweep || seg == f.a.seg_len || seg >= T)
        continue;
      Fast<D> g(in, out, 1, T, H, 0, 8, false, seg);
      std::printf("         seg %5lld nseg %5lld: %.3f ms%s\n", seg, g.a.nseg,
                  medianMs([&] { g.run(); }),
                  g.fusedError() ? " (fused wait gave up)" : "");
    }
  }
  CK(cudaDeviceSynchronize());
  CK(cudaFree(in));
  CK(cudaFree(out));
  CK(cudaFree(out2));
  return 0;
}

int main(int argc, char **argv) {
  bool doCheck = true;
  long long maxT = 1 << 20, seqMaxT = 16384;
  int d = 128;
  std::vector<long long> ts = {4096, 16384, 65536, 262144, 1048576};
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--no-check"))
      doCheck = false;
    else if (!std::strcmp(argv[i], "--no-sweep"))
      sweep = false;
    else if (!std::strcmp(argv[i], "--fused") && i + 1 < argc)
      gFusedSeg = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--var") && i + 1 < argc)
      gVar = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--max-t") && i + 1 < argc)
      maxT = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--seq-max-t") && i + 1 < argc)
      seqMaxT = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--d") && i + 1 < argc)
      d = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--t") && i + 1 < argc) {
      ts.clear();
      for (char *p = argv[++i]; *p;) {
        ts.push_back(std::strtoll(p, &p, 10));
        if (*p == ',')
          ++p;
      }
    }
  }
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, L2 %d MB; output form %d (default %d)%s\n",
              prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20, gVar,
              k::kLightningWgmmaVar,
              gFusedSeg > 0   ? "; fused single launch"
              : gFusedSeg < 0 ? "; fused where the runtime picks it"
                              : "");
  if (d == 64)
    benchMain<64>(doCheck, maxT, ts, seqMaxT);
  else
    benchMain<128>(doCheck, maxT, ts, seqMaxT);
  std::printf(failures ? "FAILED: %d check(s)\n" : "all checks passed\n",
              failures);
  return failures ? 1 : 0;
}
