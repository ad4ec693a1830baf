// dlopen of libcuda.so.1 and libcublasLt; see CudaDriver.h.
#include "runtime/cuda/CudaDriver.h"

#include <cstdlib>
#include <dlfcn.h>
#include <mutex>
#include <string>
#include <vector>

namespace mm::cuda {
namespace {

void *openFirst(const std::vector<std::string> &names) {
  for (const std::string &n : names)
    if (void *lib = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL))
      return lib;
  return nullptr;
}

template <typename Fn>
bool bind(void *lib, Fn &fn, const char *name, std::string &missing) {
  fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (!fn && missing.empty())
    missing = name;
  return fn != nullptr;
}

} // namespace

Status Driver::error(CUresult r, const char *call) const {
  const char *text = nullptr;
  if (getErrorString(r, &text) != CUDA_SUCCESS || !text)
    text = "unknown error";
  return Status(StatusCode::kInternal, std::string(call) + " failed (" +
                                           std::to_string(int(r)) +
                                           "): " + text);
}

Status CublasLt::error(cublasStatus_t s, const char *call) const {
  return Status(StatusCode::kInternal,
                std::string(call) + " failed: " + getStatusString(s));
}

StatusOr<const Driver *> driver() {
  static Driver d;
  static Status status;
  static std::once_flag once;
  std::call_once(once, [] {
    void *lib = openFirst({"libcuda.so.1", "libcuda.so"});
    if (!lib) {
      status =
          Status(StatusCode::kUnimplemented,
                 "the CUDA backend needs the NVIDIA driver (libcuda.so.1), "
                 "which is not installed on this machine; use --backend cpu");
      return;
    }
    std::string missing;
    bind(lib, d.getErrorString, "cuGetErrorString", missing);
    bind(lib, d.init, "cuInit", missing);
    bind(lib, d.deviceGetCount, "cuDeviceGetCount", missing);
    bind(lib, d.deviceGet, "cuDeviceGet", missing);
    bind(lib, d.deviceGetName, "cuDeviceGetName", missing);
    bind(lib, d.deviceGetAttribute, "cuDeviceGetAttribute", missing);
    bind(lib, d.primaryCtxRetain, "cuDevicePrimaryCtxRetain", missing);
    bind(lib, d.primaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", missing);
    bind(lib, d.ctxSetCurrent, "cuCtxSetCurrent", missing);
    bind(lib, d.moduleLoadData, "cuModuleLoadData", missing);
    bind(lib, d.moduleUnload, "cuModuleUnload", missing);
    bind(lib, d.moduleGetFunction, "cuModuleGetFunction", missing);
    bind(lib, d.funcSetAttribute, "cuFuncSetAttribute", missing);
    bind(lib, d.launchKernel, "cuLaunchKernel", missing);
    bind(lib, d.memAlloc, "cuMemAlloc_v2", missing);
    bind(lib, d.memFree, "cuMemFree_v2", missing);
    bind(lib, d.memGetInfo, "cuMemGetInfo_v2", missing);
    bind(lib, d.memcpyHtoDAsync, "cuMemcpyHtoDAsync_v2", missing);
    bind(lib, d.memcpyDtoHAsync, "cuMemcpyDtoHAsync_v2", missing);
    bind(lib, d.memsetD8Async, "cuMemsetD8Async", missing);
    bind(lib, d.streamCreate, "cuStreamCreate", missing);
    bind(lib, d.streamDestroy, "cuStreamDestroy_v2", missing);
    bind(lib, d.streamSynchronize, "cuStreamSynchronize", missing);
    bind(lib, d.eventCreate, "cuEventCreate", missing);
    bind(lib, d.eventDestroy, "cuEventDestroy_v2", missing);
    bind(lib, d.eventRecord, "cuEventRecord", missing);
    bind(lib, d.eventSynchronize, "cuEventSynchronize", missing);
    bind(lib, d.tensorMapEncodeTiled, "cuTensorMapEncodeTiled", missing);
    // cuda.h maps the name to _v2 (CUDA 12.8+); older drivers have the first.
    d.eventElapsedTime = reinterpret_cast<decltype(d.eventElapsedTime)>(
        dlsym(lib, "cuEventElapsedTime_v2"));
    if (!d.eventElapsedTime)
      bind(lib, d.eventElapsedTime, "cuEventElapsedTime", missing);
    if (!missing.empty()) {
      status = Status(StatusCode::kUnimplemented,
                      "the NVIDIA driver library lacks " + missing +
                          " (a driver for CUDA 12 or newer is needed)");
      return;
    }
    CUresult r = d.init(0);
    if (r == CUDA_ERROR_NO_DEVICE) {
      status = Status(StatusCode::kUnimplemented,
                      "the NVIDIA driver is installed but finds no GPU");
      return;
    }
    if (r != CUDA_SUCCESS)
      status = d.error(r, "cuInit");
  });
  if (!status.isOk())
    return status;
  return &d;
}

StatusOr<const CublasLt *> cublasLt() {
  static CublasLt lt;
  static Status status;
  static std::once_flag once;
  std::call_once(once, [] {
    std::vector<std::string> names = {"libcublasLt.so.13", "libcublasLt.so.12",
                                      "libcublasLt.so"};
    if (const char *home = std::getenv("CUDA_HOME"))
      names.push_back(std::string(home) + "/lib64/libcublasLt.so");
    names.push_back("/usr/local/cuda/lib64/libcublasLt.so");
    void *lib = openFirst(names);
    if (!lib) {
      status =
          Status(StatusCode::kUnimplemented,
                 "the CUDA backend needs cuBLASLt (libcublasLt.so from the "
                 "CUDA toolkit) for linear layers; it was not found (set "
                 "LD_LIBRARY_PATH to the toolkit's lib64)");
      return;
    }
    std::string missing;
    bind(lib, lt.create, "cublasLtCreate", missing);
    bind(lib, lt.destroy, "cublasLtDestroy", missing);
    bind(lib, lt.getStatusString, "cublasLtGetStatusString", missing);
    bind(lib, lt.matmulDescCreate, "cublasLtMatmulDescCreate", missing);
    bind(lib, lt.matmulDescDestroy, "cublasLtMatmulDescDestroy", missing);
    bind(lib, lt.matmulDescSetAttribute, "cublasLtMatmulDescSetAttribute",
         missing);
    bind(lib, lt.matrixLayoutCreate, "cublasLtMatrixLayoutCreate", missing);
    bind(lib, lt.matrixLayoutDestroy, "cublasLtMatrixLayoutDestroy", missing);
    bind(lib, lt.preferenceCreate, "cublasLtMatmulPreferenceCreate", missing);
    bind(lib, lt.preferenceDestroy, "cublasLtMatmulPreferenceDestroy", missing);
    bind(lib, lt.preferenceSetAttribute, "cublasLtMatmulPreferenceSetAttribute",
         missing);
    bind(lib, lt.algoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic", missing);
    bind(lib, lt.matmul, "cublasLtMatmul", missing);
    if (!missing.empty())
      status = Status(StatusCode::kUnimplemented,
                      "the cuBLASLt library found lacks " + missing);
  });
  if (!status.isOk())
    return status;
  return &lt;
}

} // namespace mm::cuda
