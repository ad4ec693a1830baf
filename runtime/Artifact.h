// Loading an mm artifact (.mmb) into a Plan: plain C++ structs that the
// executor runs.
//
// loadArtifact() reads the file, runs the flatbuffers verifier (identifier
// "MMB1"), converts the flatbuffer into a Plan and then runs the semantic check
// (Verify.cpp) of every step against the kernel catalog (docs/kernels.md).
// After that, executors trust the Plan: every operand has the rank, dtype and
// symbolic shape its kernel expects, every parameter is present and sane, and
// every activation lies inside the arena. A Plan is immutable after loading and
// safe to share between threads.
#pragma once

#include "runtime/base/Status.h"
#include "schema/ArtifactVersion.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace mm {

/// The schema version this runtime reads (shared with the writer); artifacts
/// with any other `Program.version` are refused.
inline constexpr uint32_t kSchemaVersion = artifact::kSchemaVersion;

// Sanity limits: far above any real model, low enough that sizes cannot
// overflow 64-bit byte counts and a corrupt file cannot make the runtime loop
// for hours.
inline constexpr int64_t kMaxBatch = int64_t(1) << 20;
inline constexpr int64_t kMaxSeq = int64_t(1) << 26;
inline constexpr int64_t kMaxConstDim = int64_t(1) << 32;
inline constexpr int64_t kMaxRank = 8;
inline constexpr uint64_t kMaxBufferBytes = uint64_t(1) << 50;
inline constexpr int64_t kMaxIntParam = int64_t(1) << 31;

enum class DType : uint8_t { F32, I32, BF16, F16 };
enum class DimKind : uint8_t { Const, Batch, Seq };
enum class BufferKind : uint8_t { Activation, Weight, Input, State };

/// Every kernel of docs/kernels.md.
enum class Kernel : uint8_t {
  Embedding,
  RmsNorm,
  Linear,
  Logits,
  Silu,
  Sigmoid,
  Mul,
  ScaledAdd,
  Rope,
  LightningAttention,
  SoftmaxAttention,
  Moe,
  CrossEntropy,
  AddRmsNorm, // fused by mm-fuse: rms_norm(alpha*a + beta*b)
  SigmoidMul, // fused by mm-fuse: sigmoid(a) * b
  // Training (docs/kernels.md, "Training kernels").
  EmbeddingGrad,
  RmsNormGrad,
  LinearGrad,
  SiluGrad,
  SigmoidGrad,
  RopeGrad,
  LightningAttentionGrad,
  SoftmaxAttentionGrad,
  MoeGrad,
  LmHeadLoss,
  LmHeadLossGrad,
  GradNorm,
  AdamW,
  Came,
  CameVector,
  StoreParam,
};

struct Dim {
  DimKind kind = DimKind::Const;
  int64_t value = 0; // the size when kind == Const
  bool operator==(const Dim &o) const {
    return kind == o.kind && value == o.value;
  }
  bool operator!=(const Dim &o) const { return !(*this == o); }
};

struct BufferDesc {
  BufferKind kind = BufferKind::Activation;
  std::string name;
  DType dtype = DType::F32;
  std::vector<Dim> shape;
  uint64_t offset = 0;   // arena byte offset (Activation only)
  uint64_t maxBytes = 0; // size at (max_batch, max_seq); filled by the verifier
  // Weight only: >= 0 binds the slice [sliceOffset, sliceOffset +
  // shape[sliceAxis]) along this axis of the named tensor; -1 binds the whole
  // tensor.
  int32_t sliceAxis = -1;
  int64_t sliceOffset = 0;
};

/// Step parameters, decoded by the verifier from the step's Param table. Only
/// those the kernel lists in the catalog are meaningful for a given step.
struct KernelParams {
  double eps = 0, alpha = 0, beta = 0, theta = 0, scale = 0;
  int64_t numHeads = 0, numKvHeads = 0, headDim = 0, rotaryDim = 0;
  int64_t blockSize = 0, layerIndex = 0, numLayers = 0, topK = 0;
  bool siluInput = false;    // lightning_attention: silu applied to qkv on load
  bool lastPosition = false; // logits: only position T-1, output [B, 1, V]
  /// Tile sizes chosen by mm-tile for GPU targets (0 where absent); only the
  /// CUDA backend reads them.
  int64_t tileThreads = 0, tileBlock = 0, tileDv = 0, tileQ = 0, tileK = 0;
  int64_t tileChunk = 0; // lightning: 1 = the chunk-parallel bf16 form
  int64_t tileM = 0, tileN = 0;
  // Training kernels.
  int64_t chunkRows = 0;
  double beta1 = 0, beta2 = 0, beta3 = 0, eps2 = 0, weightDecay = 0;
  double maxNorm = 0, clipThreshold = 0;
};

/// A named parameter exactly as stored (kept for `mm-run inspect`).
struct RawParam {
  std::string name;
  int64_t i = 0;
  double f = 0;
};

struct StepDesc {
  Kernel kernel = Kernel::Embedding;
  std::string kernelName;
  std::vector<uint32_t> inputs;
  std::vector<uint32_t> outputs;
  std::vector<RawParam> rawParams;
  KernelParams params;
  uint32_t stream = 0;
  std::string function; // cubin entry point (GPU targets; empty for cuBLASLt)
};

struct Binding {
  std::string name;
  uint32_t buffer = 0;
};

struct Plan {
  uint32_t version = 0;
  std::string model;
  std::string target;
  int64_t maxBatch = 0;
  int64_t maxSeq = 0;
  uint64_t arenaBytes = 0;
  std::vector<BufferDesc> buffers;
  std::vector<StepDesc> steps;
  std::vector<Binding> inputs;
  std::vector<Binding> outputs;
  uint64_t cubinBytes = 0;
  std::vector<uint8_t> cubin; // GPU code for `target`, empty for "cpu"

  /// Index into `inputs`/`outputs` of the binding called `name`, or -1.
  int findInput(const std::string &name) const;
  int findOutput(const std::string &name) const;
};

/// A buffer's shape resolved for one run's B and T.
struct ResolvedShape {
  std::array<int64_t, kMaxRank> dims{};
  int64_t elements = 1;
};

/// Reads, verifies and converts the artifact at `path`. Errors name the file
/// and the field.
StatusOr<Plan> loadArtifact(const std::string &path);

/// As loadArtifact, from bytes in memory; `what` names the source in messages.
StatusOr<Plan> parseArtifact(const uint8_t *data, size_t size,
                             const std::string &what);

/// The semantic check of Verify.cpp: fills BufferDesc::maxBytes and
/// StepDesc::params, and rejects anything the kernel catalog does not allow.
/// Called by parseArtifact; exposed for tests.
Status verifyPlan(Plan &plan);

const char *dtypeName(DType t);
size_t dtypeSize(DType t);
const char *kernelName(Kernel k);
/// "[B, T, 64]" for messages and `inspect`.
std::string formatShape(const std::vector<Dim> &shape);

/// "non-finite value NaN in tensor 't32' at flat index 0, written by linear
/// reading weight 'w'": the NaN/Inf report of both backends (activations
/// have only debug names, so the weights the step read are named too).
std::string nonFiniteMessage(const Plan &plan, const StepDesc &step,
                             const BufferDesc &tensor, float value,
                             uint64_t index);

/// Resolves a symbolic shape for the actual batch `b` and sequence length `t`.
std::vector<int64_t> resolveShape(const std::vector<Dim> &shape, int64_t b,
                                  int64_t t);

} // namespace mm
