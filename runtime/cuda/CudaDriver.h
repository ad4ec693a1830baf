// The CUDA driver API and cuBLASLt, loaded with dlopen on first use.
//
// Nothing in the runtime links libcuda or libcublasLt: machines without a GPU
// (build machines, CI) have neither, and `mm-run --backend cpu` must start
// there. `driver()` / `cublasLt()` load the libraries once (thread-safe) and
// return a table of entry points, or a Status whose one-line message says what
// is missing. CU_CALL / LT_CALL turn a failing call into a Status naming it.
#pragma once

#include "runtime/base/Status.h"

#include <cublasLt.h>
#include <cuda.h>

namespace mm::cuda {

struct Driver {
  decltype(&::cuGetErrorString) getErrorString;
  decltype(&::cuInit) init;
  decltype(&::cuDeviceGetCount) deviceGetCount;
  decltype(&::cuDeviceGet) deviceGet;
  decltype(&::cuDeviceGetName) deviceGetName;
  decltype(&::cuDeviceGetAttribute) deviceGetAttribute;
  decltype(&::cuDevicePrimaryCtxRetain) primaryCtxRetain;
  decltype(&::cuDevicePrimaryCtxRelease) primaryCtxRelease;
  decltype(&::cuCtxSetCurrent) ctxSetCurrent;
  decltype(&::cuModuleLoadData) moduleLoadData;
  decltype(&::cuModuleUnload) moduleUnload;
  decltype(&::cuModuleGetFunction) moduleGetFunction;
  decltype(&::cuFuncSetAttribute) funcSetAttribute;
  decltype(&::cuLaunchKernel) launchKernel;
  decltype(&::cuMemAlloc) memAlloc;
  decltype(&::cuMemFree) memFree;
  decltype(&::cuMemGetInfo) memGetInfo;
  decltype(&::cuMemcpyHtoDAsync) memcpyHtoDAsync;
  decltype(&::cuMemcpyDtoHAsync) memcpyDtoHAsync;
  decltype(&::cuMemsetD8Async) memsetD8Async;
  decltype(&::cuStreamCreate) streamCreate;
  decltype(&::cuStreamDestroy) streamDestroy;
  decltype(&::cuStreamSynchronize) streamSynchronize;
  decltype(&::cuEventCreate) eventCreate;
  decltype(&::cuEventDestroy) eventDestroy;
  decltype(&::cuEventRecord) eventRecord;
  decltype(&::cuEventSynchronize) eventSynchronize;
  decltype(&::cuEventElapsedTime) eventElapsedTime;
  /// The FA3 softmax attention's TMA maps (kernels/softmax_attention_tma.h).
  decltype(&::cuTensorMapEncodeTiled) tensorMapEncodeTiled;

  /// "cuLaunchKernel failed: CUDA_ERROR_...: <text>" for a failed call.
  Status error(CUresult r, const char *call) const;
};

struct CublasLt {
  decltype(&::cublasLtCreate) create;
  decltype(&::cublasLtDestroy) destroy;
  decltype(&::cublasLtGetStatusString) getStatusString;
  decltype(&::cublasLtMatmulDescCreate) matmulDescCreate;
  decltype(&::cublasLtMatmulDescDestroy) matmulDescDestroy;
  decltype(&::cublasLtMatmulDescSetAttribute) matmulDescSetAttribute;
  decltype(&::cublasLtMatrixLayoutCreate) matrixLayoutCreate;
  decltype(&::cublasLtMatrixLayoutDestroy) matrixLayoutDestroy;
  decltype(&::cublasLtMatmulPreferenceCreate) preferenceCreate;
  decltype(&::cublasLtMatmulPreferenceDestroy) preferenceDestroy;
  decltype(&::cublasLtMatmulPreferenceSetAttribute) preferenceSetAttribute;
  decltype(&::cublasLtMatmulAlgoGetHeuristic) algoGetHeuristic;
  decltype(&::cublasLtMatmul) matmul;

  Status error(cublasStatus_t s, const char *call) const;
};

/// The driver, or an error such as "the CUDA backend needs the NVIDIA driver
/// (libcuda.so.1), which is not installed on this machine".
StatusOr<const Driver *> driver();
StatusOr<const CublasLt *> cublasLt();

#define MM_CU_CALL(drv, call, ...)                                             \
  do {                                                                         \
    CUresult mm_cu_r = (drv).call(__VA_ARGS__);                                \
    if (mm_cu_r != CUDA_SUCCESS)                                               \
      return (drv).error(mm_cu_r, "cu" #call);                                 \
  } while (0)

#define MM_LT_CALL(lt, call, ...)                                              \
  do {                                                                         \
    cublasStatus_t mm_lt_s = (lt).call(__VA_ARGS__);                           \
    if (mm_lt_s != CUBLAS_STATUS_SUCCESS)                                      \
      return (lt).error(mm_lt_s, "cublasLt" #call);                            \
  } while (0)

} // namespace mm::cuda
