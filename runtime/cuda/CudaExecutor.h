// The CUDA backend: runs a verified Plan's steps on GPU 0.
//
// create() loads the driver and cuBLASLt (dlopen), checks that the artifact's
// cubin matches the device, loads it (cuModuleLoadData), resolves every step's
// entry points, and makes ONE device allocation holding the weights, the
// activation arena (Plan offsets), the per-step workspace (shared by all
// steps: MoE routing tables, cross-entropy row losses, cuBLASLt), the inputs
// and the error slot; then uploads the weights. run() copies inputs in, issues
// every step on one stream with no allocation and no synchronisation, copies
// the outputs and the error slot back and synchronises once.
//
// Not thread-safe: one run at a time.
#pragma once

#include "runtime/Artifact.h"

#include <memory>
#include <string>
#include <vector>

namespace mm::cuda {

class CudaExecutor {
public:
  /// `hostData[i]` is the host storage of buffer i; weight buffers hold their
  /// f32 values (as bound by the Session) and are uploaded here.
  /// `checkFinite`: run() fails naming the first step output that holds a
  /// NaN/Inf (training): when an output of the run is not finite, the run is
  /// replayed with a device scan of every step's outputs.
  static StatusOr<std::unique_ptr<CudaExecutor>>
  create(const Plan &plan, const std::vector<void *> &hostData,
         bool checkFinite = false);
  ~CudaExecutor();
  CudaExecutor(const CudaExecutor &) = delete;
  CudaExecutor &operator=(const CudaExecutor &) = delete;

  /// Copies Input buffers from `hostData`, runs every step for (batch, seq)
  /// and copies every output binding's buffer back into `hostData`.
  Status run(const std::vector<void *> &hostData,
             const std::vector<ResolvedShape> &shapes, int64_t batch,
             int64_t seq);

  /// Copies the weights and optimizer states (updated in place on the device
  /// by training steps) to `hostData` as f32, or back from it (after a
  /// checkpoint is restored into the host copies).
  Status downloadPersistent(const std::vector<void *> &hostData);
  Status uploadPersistent(const std::vector<void *> &hostData);

  /// "NVIDIA H100 80GB HBM3 (sm_90)".
  const std::string &deviceName() const;

  /// From the next run on, times every step with a pair of CUDA events (one
  /// event record per step on the stream; no host synchronisation added).
  Status setProfiling(bool on);
  /// Milliseconds of each step in the last run, if it was profiled.
  const std::vector<float> &stepTimes() const;

  /// The one device allocation, by part, and what the device reports used
  /// (all processes, the CUDA context and cuBLASLt included).
  struct MemoryUse {
    uint64_t weights = 0, arena = 0, workspace = 0, ltWorkspace = 0;
    uint64_t allocated = 0; // the whole allocation (the parts + inputs)
    uint64_t deviceUsed = 0, deviceTotal = 0;
  };
  StatusOr<MemoryUse> memoryUse() const;

  struct Impl;

private:
  explicit CudaExecutor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace mm::cuda
