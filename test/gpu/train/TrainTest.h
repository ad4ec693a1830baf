// Shared scaffolding of the GPU training-kernel tests (test/gpu/train/*.cu).
//
// Each test binary is host code linked with -lcuda and the CPU reference
// backend (libmm_runtime.a). The kernels under test are compiled separately
// into a cubin (nvcc -cubin -arch=sm_90a) from a small .cu that includes the
// family's .cuh and expands its MM_<FAMILY>_ENTRIES macro, exactly as
// mm-codegen-cuda does, and loaded here through the driver API: the test
// resolves entries by name and launches a family's plan (kernels/launch.h)
// the way the executor does.
#pragma once

#include "kernels/launch.h"

#include <cuda.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace mm::test {

#define MM_CU(call)                                                            \
  do {                                                                         \
    CUresult r_ = (call);                                                      \
    if (r_ != CUDA_SUCCESS) {                                                  \
      const char *s_ = nullptr;                                                \
      cuGetErrorString(r_, &s_);                                               \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__,       \
                   #call, s_ ? s_ : "?");                                      \
      std::exit(1);                                                            \
    }                                                                          \
  } while (0)

/// Round-to-nearest-even to bf16, returned as the f32 it represents.
inline float bf16Round(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) != 0x7f800000u)
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}
inline uint16_t bf16Bits(float x) {
  const float r = bf16Round(x);
  uint32_t u;
  std::memcpy(&u, &r, 4);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16Value(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

/// ‖a − b‖ / ‖b‖ (‖a − b‖ if b is zero); NaN anywhere gives +inf.
inline double relErr(const std::vector<float> &a, const std::vector<float> &b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i]))
      return INFINITY;
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  if (a.size() != b.size())
    return INFINITY;
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

/// Uniform values in [-scale, scale); rounded to bf16 when `bf16` (so the CPU
/// reference sees exactly the GPU's inputs).
inline std::vector<float> randomVec(std::mt19937_64 &rng, size_t n, float scale,
                                    bool bf16) {
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (float &x : v)
    x = bf16 ? bf16Round(u(rng)) : u(rng);
  return v;
}

/// A device buffer holding f32 or bf16 values; `poison` fills NaN bytes.
struct DevBuf {
  CUdeviceptr ptr = 0;
  size_t count = 0;
  bool bf16 = false;
  DevBuf() = default;
  DevBuf(size_t n, bool isBf16) : count(n), bf16(isBf16) {
    MM_CU(cuMemAlloc(&ptr, bytes() ? bytes() : 16));
    poison();
  }
  DevBuf(const DevBuf &) = delete;
  DevBuf &operator=(const DevBuf &) = delete;
  ~DevBuf() {
    if (ptr)
      cuMemFree(ptr);
  }
  size_t bytes() const { return count * (bf16 ? 2 : 4); }
  void poison() { MM_CU(cuMemsetD8(ptr, 0xff, bytes() ? bytes() : 16)); }
  void upload(const std::vector<float> &v) {
    if (!bf16) {
      MM_CU(cuMemcpyHtoD(ptr, v.data(), v.size() * 4));
      return;
    }
    std::vector<uint16_t> b(v.size());
    for (size_t i = 0; i < v.size(); ++i)
      b[i] = bf16Bits(v[i]);
    MM_CU(cuMemcpyHtoD(ptr, b.data(), b.size() * 2));
  }
  void uploadRaw(const void *data, size_t n) {
    MM_CU(cuMemcpyHtoD(ptr, data, n));
  }
  std::vector<float> download() const {
    std::vector<float> v(count);
    if (!bf16) {
      MM_CU(cuMemcpyDtoH(v.data(), ptr, count * 4));
      return v;
    }
    std::vector<uint16_t> b(count);
    MM_CU(cuMemcpyDtoH(b.data(), ptr, count * 2));
    for (size_t i = 0; i < count; ++i)
      v[i] = bf16Value(b[i]);
    return v;
  }
};

/// The GPU, a context and one cubin; entries resolved by name.
class Gpu {
public:
  /// Returns false (after printing why) when there is no GPU.
  bool open(const std::string &cubinPath) {
    if (cuInit(0) != CUDA_SUCCESS) {
      std::printf("no CUDA driver/GPU: skipped\n");
      return false;
    }
    int n = 0;
    if (cuDeviceGetCount(&n) != CUDA_SUCCESS || n < 1) {
      std::printf("no CUDA device: skipped\n");
      return false;
    }
    MM_CU(cuDeviceGet(&dev_, 0));
    MM_CU(cuDevicePrimaryCtxRetain(&ctx_, dev_));
    MM_CU(cuCtxSetCurrent(ctx_));
    MM_CU(cuModuleLoad(&module_, cubinPath.c_str()));
    MM_CU(cuDeviceGetAttribute(&sms_, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
                               dev_));
    char name[256] = {0};
    MM_CU(cuDeviceGetName(name, sizeof(name) - 1, dev_));
    name_ = name;
    return true;
  }
  int sms() const { return sms_; }
  const std::string &name() const { return name_; }

  /// Runs `n` launches of a plan with entry `prefix` + suffix, `args` (the
  /// family's argument block) passed by value to each; synchronises and checks.
  template <typename Args>
  void run(const std::string &prefix, const k::Launch *plan, int n,
           const Args &args) {
    for (int i = 0; i < n; ++i) {
      const std::string entry = prefix + plan[i].suffix;
      CUfunction fn = nullptr;
      if (cuModuleGetFunction(&fn, module_, entry.c_str()) != CUDA_SUCCESS) {
        std::fprintf(stderr, "the cubin has no entry '%s'\n", entry.c_str());
        std::exit(1);
      }
      if (plan[i].smem > 48 * 1024)
        MM_CU(cuFuncSetAttribute(
            fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            static_cast<int>(plan[i].smem)));
      Args copy = args;
      void *params[] = {&copy};
      MM_CU(cuLaunchKernel(fn, plan[i].gx, plan[i].gy, plan[i].gz,
                           plan[i].threads, 1, 1, plan[i].smem, nullptr, params,
                           nullptr));
    }
    MM_CU(cuCtxSynchronize());
  }

  /// Median milliseconds of `reps` runs of the plan after 3 warm-ups.
  template <typename Args>
  float time(const std::string &prefix, const k::Launch *plan, int n,
             const Args &args, int reps = 10) {
    for (int w = 0; w < 3; ++w)
      run(prefix, plan, n, args);
    std::vector<float> ms;
    CUevent a, b;
    MM_CU(cuEventCreate(&a, CU_EVENT_DEFAULT));
    MM_CU(cuEventCreate(&b, CU_EVENT_DEFAULT));
    for (int r = 0; r < reps; ++r) {
      MM_CU(cuEventRecord(a, nullptr));
      run(prefix, plan, n, args);
      MM_CU(cuEventRecord(b, nullptr));
      MM_CU(cuEventSynchronize(b));
      float t = 0;
      MM_CU(cuEventElapsedTime(&t, a, b));
      ms.push_back(t);
    }
    cuEventDestroy(a);
    cuEventDestroy(b);
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  }

private:
  CUdevice dev_ = 0;
  CUcontext ctx_ = nullptr;
  CUmodule module_ = nullptr;
  int sms_ = 1;
  std::string name_;
};

/// Counts and prints results: check("name", err, tol).
struct Report {
  int cases = 0, failures = 0;
  bool check(const std::string &what, double err, double tol) {
    ++cases;
    const bool ok = err <= tol;
    failures += !ok;
    std::printf("%s %-60s rel %.2e (tol %.0e)\n", ok ? "ok  " : "FAIL",
                what.c_str(), err, tol);
    return ok;
  }
  int finish() const {
    std::printf("%d/%d passed\n", cases - failures, cases);
    return failures ? 1 : 0;
  }
};

} // namespace mm::test
