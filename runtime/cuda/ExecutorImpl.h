// The CUDA executor's state, shared by CudaExecutor.cpp (inference steps,
// allocation, run) and CudaTrain.cpp (training steps: gradients, optimizers,
// NaN/Inf checks). Private to runtime/cuda.
#pragma once

#include "kernels/args.h"
#include "kernels/launch.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/CudaExecutor.h"
#include "runtime/cuda/KernelLaunch.h"
#include "runtime/TrainSchedule.h"
#include "runtime/cuda/LtGemm.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mm::cuda {

/// Weights live on the device as bf16 when the artifact stores them so, and
/// as f32 otherwise (f16 and f32 checkpoints alike); optimizer states are f32.
inline DType deviceDtype(const BufferDesc &b) {
  return b.dtype == DType::BF16 ? DType::BF16 : DType::F32;
}

/// Weights and optimizer states: device-resident for the executor's life,
/// uploaded at creation, exchanged with the host for checkpoints.
inline bool isPersistent(const BufferDesc &b) {
  return b.kind == BufferKind::Weight || b.kind == BufferKind::State;
}

inline cudaDataType_t cudaType(DType t) {
  return t == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

struct StepLaunch {
  std::vector<CUfunction> fns;
  uint32_t smemBytes = 0;       // dynamic shared memory of the (single) kernel
  std::vector<uint32_t> fnSmem; // per entry, where the entries differ
};

struct CudaExecutor::Impl {
  const Plan &plan;
  const Driver &drv;
  CUdevice device = 0;
  CUcontext ctx = nullptr;
  CUmodule module = nullptr;
  CUstream stream = nullptr;
  CUdeviceptr base = 0;
  uint64_t workspace = 0, errorSlot = 0, ltWorkspace = 0;
  int multiprocessors = 1; // persistent grids (the wgmma MoE GEMMs)
  uint64_t weightBytes = 0, workspaceBytes = 0, totalBytes = 0;
  bool profiling = false;
  std::vector<CUevent> events; // profiling: one before each step, one after
  std::vector<float> stepMs;
  std::vector<CUdeviceptr> dev; // per buffer
  std::vector<StepLaunch> launches;
  std::unique_ptr<LtGemm> lt;
  std::string name;

  Impl(const Plan &p, const Driver &d) : plan(p), drv(d) {}
  ~Impl() {
    lt.reset();
    if (ctx)
      drv.ctxSetCurrent(ctx);
    for (CUevent e : events)
      drv.eventDestroy(e);
    if (stream)
      drv.streamDestroy(stream);
    if (base)
      drv.memFree(base);
    if (module)
      drv.moduleUnload(module);
    if (ctx)
      drv.primaryCtxRelease(device);
  }

  Status open();
  Status allocate(const std::vector<void *> &hostData);
  /// f(index, buffer) once per distinct weight/state storage, then a sync.
  template <typename F> Status eachPersistent(F f);
  Status uploadPersistent(const std::vector<void *> &hostData);
  Status downloadPersistent(const std::vector<void *> &hostData);
  Status launch(CUfunction fn, unsigned gx, unsigned gy, unsigned gz,
                unsigned threads, unsigned smem, void *args) {
    void *params[] = {args};
    MM_CU_CALL(drv, launchKernel, fn, gx, gy, gz, threads, 1, 1, smem, stream,
               params, nullptr);
    return Status::ok();
  }
  /// One pass over the steps: inputs up, every step, outputs down. `scan`:
  /// NaN/Inf checks after every step, reported by name.
  Status pass(const std::vector<void *> &hostData,
              const std::vector<ResolvedShape> &shapes, int64_t seq, bool scan);
  Status runStep(size_t index, const std::vector<ResolvedShape> &shapes);
  Status checkErrorSlot(int64_t seq);

  /// MM_LIGHTNING_FUSED at open (-1 unset; see open()).
  long long lightningFused = -1;

  // Training (CudaTrain.cpp).
  bool checkFinite = false; // NaN/Inf detection (see CudaExecutor::run)
  uint64_t scalars = 0;     // kScalarBytes of device scalars (below)
  // Fusions and multi-tensor groups (runtime/TrainSchedule.h).
  TrainSchedule sched;
  // Per softmax_attention step whose backward reuses its statistics
  // (sched.savedFor): device addresses of the kept row log-sum-exp (f32 [B,
  // Hq, Tpad]) and output copy; 0 elsewhere.
  std::vector<CUdeviceptr> savedLse, savedOut;
  // Device tables of the multi-tensor adamw groups and grad_norm steps, at
  // `tables`: per adamw group / grad_norm step, the table's byte offset and
  // its blocks.
  struct Table {
    uint64_t offset = 0;
    unsigned long long blocks = 0;
  };
  std::vector<Table> adamTables;
  std::map<size_t, Table> normTables;
  uint64_t tables = 0;
  uint64_t tableBytes() const; // at allocate()
  Status uploadTables();       // at allocate(), after dev[] is known
  std::map<std::string, CUfunction> fnCache;
  std::map<CUfunction, uint32_t> fnSmemSet;
  /// The entry `name` of the cubin, opted in to `smem` bytes of dynamic
  /// shared memory (resolved once).
  StatusOr<CUfunction> entry(const std::string &name, uint32_t smem);
  /// Issues a kernels/launch.h plan: entries prefix + suffix, args by value.
  Status launchPlan(const std::string &prefix, const k::Launch *plan, int n,
                    void *args);
  Status openTrainStep(size_t index); // validation, at open()
  /// Every buffer's shape at the compile-time maxima.
  std::vector<ResolvedShape> maxShapes() const;
  uint64_t trainWorkspaceBytes(size_t index,
                               const std::vector<ResolvedShape> &shapes);
  /// Issues training step `index`; with `workspaceBytes`, only reports the
  /// workspace its kernels need at `shapes` (nothing launched).
  Status runTrainStep(size_t index, const std::vector<ResolvedShape> &shapes,
                      uint64_t *workspaceBytes = nullptr);
  /// The output gate's backward of steps index..index+2 in one pass
  /// (TrainSchedule::fusedGate).
  Status runGateGrad(size_t index, const std::vector<ResolvedShape> &shapes);
  /// A scaled_add folded into linear / linear_grad step `index`
  /// (TrainSchedule::fusedAdd): sum = alpha · product + beta · other.
  struct FusedAdd {
    CUdeviceptr sum, other;
    float alpha, beta;
  };
  FusedAdd fusedAdd(size_t index) const;
  Status launchFiniteChecks(size_t index,
                            const std::vector<ResolvedShape> &shapes);
  Status checkFiniteSlot();
  Status checkStepInputs(const std::vector<void *> &hostData);
};

/// Device scalars of a training run, at Impl::scalars: the grad-norm f64
/// accumulator, the finite-check slot (u64), the lm-head label count and a
/// loss the fused pass does not return (f32).
constexpr uint64_t kScalarGradAcc = 0, kScalarFinite = 8, kScalarCount = 16,
                   kScalarLoss = 20, kScalarBytes = 256;

/// Whether the executor runs `k` through CudaTrain.cpp.
bool isTrainKernel(Kernel k);
/// The element type a training step's kernel is instantiated with (see
/// compiler/CodegenCuda.cpp trainFamily) and its entry prefix.
DType trainKernelDtype(const Plan &plan, const StepDesc &s);
std::string trainFunction(const Plan &plan, const StepDesc &s);

} // namespace mm::cuda
