// Session: executes a verified Plan on the CPU backend. Creation allocates
// everything once (the activation arena of Plan::arenaBytes, the weights
// converted to f32, the input buffers at their maximum shape) and binds weights
// by name from safetensors files; run() then executes the steps in order for
// the actual batch B and sequence length T taken from the inputs, without
// allocating (after the first run has grown the kernels' scratch).
//
// A Session is not thread-safe: one run at a time. Different Sessions are
// independent.
#pragma once

#include "runtime/Artifact.h"
#include "runtime/Npy.h"
#include "runtime/Safetensors.h"
#include "runtime/cpu/CpuKernels.h"

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mm {

namespace cuda {
class CudaExecutor;
}

/// Where a Session runs the steps.
enum class Backend { Cpu, Cuda };

struct SessionOptions {
  /// Cpu: the reference kernels in this process. Cuda: GPU 0 through the
  /// driver API (runtime/cuda/), loaded lazily; a machine without a driver or
  /// GPU gets an error Status from create().
  Backend backend = Backend::Cpu;
  /// Refuse plans whose host memory (arena on cpu + weights + inputs) exceeds
  /// this many bytes; 0 means the machine's physical memory.
  uint64_t memoryLimitBytes = 0;
  /// After every step, scan what it wrote for NaN/Inf and fail naming the
  /// first bad tensor (training turns this on; it costs one pass over each
  /// output).
  bool checkFinite = false;
};

/// A persistent tensor of a session (a weight or an optimizer state): f32, C
/// order, owned by the session. Updated in place by optimizer steps.
struct PersistentTensor {
  std::string name; // as in the artifact; "{e}" marks a stacked weight
  BufferKind kind = BufferKind::Weight;
  std::vector<int64_t> shape;
  float *data = nullptr;
  uint64_t numElements() const;
};

/// One caller-provided input: a C-order host array (int32 / int64 for i32
/// inputs, f32 for f32).
struct NamedInput {
  std::string name;
  NpyDType dtype = NpyDType::I32;
  std::vector<int64_t> shape;
  const void *data = nullptr;
};

/// An output of the last run: f32, C order, `shape` resolved for that run's B
/// and T.
struct OutputView {
  std::vector<int64_t> shape;
  const float *data = nullptr;
  uint64_t numElements() const;
};

class Session {
public:
  /// Allocates and binds weights. A weight name containing "{e}" is stacked
  /// over dim 0 from the tensors with "{e}" replaced by 0, 1, ...; each tensor
  /// is searched in `weights` in order.
  static StatusOr<std::unique_ptr<Session>>
  create(Plan plan, const std::vector<const SafetensorsFile *> &weights,
         const SessionOptions &options = {});
  ~Session();
  Session(Session &&) = delete;
  Session(const Session &) = delete;
  Session &operator=(const Session &) = delete;

  const Plan &plan() const { return plan_; }

  /// Binds every input the plan declares (each exactly once), resolves B and T
  /// from their shapes and runs all steps.
  Status run(const std::vector<NamedInput> &inputs);

  /// Output `name` of the last successful run.
  StatusOr<OutputView> output(const std::string &name) const;

  /// Every distinct weight and state (buffers sharing a name share storage),
  /// in buffer order. Checkpoints read and restore them through these.
  std::vector<PersistentTensor> persistentTensors();
  /// cuda: the weights and states live on the device and training updates
  /// them there. pullPersistent() copies them into the host tensors that
  /// persistentTensors() exposes (before reading them, e.g. to checkpoint);
  /// pushPersistent() copies the host tensors back (after writing them, e.g.
  /// on resume). No-ops on cpu.
  Status pullPersistent();
  Status pushPersistent();

  int64_t batch() const { return batch_; }
  Backend backend() const { return cuda_ ? Backend::Cuda : Backend::Cpu; }
  /// The GPU a cuda Session runs on ("NVIDIA H100 80GB HBM3 (sm_90)"), or
  /// "cpu".
  std::string deviceName() const;
  int64_t seqLen() const { return seq_; }

  /// cuda: times every step with CUDA events from the next run on (errors on
  /// cpu, which has no device timeline).
  Status setProfiling(bool on);
  /// cuda: milliseconds of each step of the last run, if it was profiled;
  /// empty otherwise.
  std::vector<float> stepTimes() const;
  /// cuda: one line on device memory, the plan's parts (weights, arena,
  /// workspaces) against what the device reports used; "" on cpu.
  std::string memoryReport() const;

private:
  explicit Session(Plan plan, const SessionOptions &options);
  Status bindWeights(const std::vector<const SafetensorsFile *> &weights);
  Status bindInputs(const std::vector<NamedInput> &inputs);
  // Zero optimizer states; a master state (the first input of a store_param
  // step) starts as a copy of the weight it stores.
  Status allocateStates(); // in TrainSteps.cpp
  // Rounds the weights stored as bf16 to the values a bf16 buffer holds.
  void roundBf16Weights();
  Status runStep(size_t index);
  Status runTrainStep(size_t index); // training kernels, in TrainSteps.cpp
  Status checkStepFinite(size_t index) const;

  // Each buffer's shape for the current B and T, kept so steps need not
  // resolve (and allocate) shapes on the hot path.
  void resolveShapes();

  Plan plan_;
  SessionOptions options_;
  uint8_t *arena_ = nullptr;
  // Optimizer states, zero at creation; buffers of one name share storage.
  std::unique_ptr<float[]> stateStorage_;
  // All weights converted to f32, and the inputs at their maximum shape; not
  // zero-filled, as binding overwrites them.
  std::unique_ptr<float[]> weightStorage_;
  std::vector<std::unique_ptr<uint8_t[]>> inputStorage_; // per buffer
  std::vector<void *> bufferData_;                       // per buffer
  std::vector<ResolvedShape> shapes_;                    // per buffer
  std::vector<const NamedInput *>
      given_; // per input binding, during bindInputs
  cpu::Scratch scratch_;
  std::unique_ptr<cuda::CudaExecutor> cuda_;
  std::vector<std::vector<float>>
      outputStorage_; // cuda: host copies of outputs
  int64_t batch_ = 0, seq_ = 0;
  bool hasRun_ = false;
};

/// Bytes of physical memory of this machine (0 if unknown).
uint64_t physicalMemoryBytes();

} // namespace mm
