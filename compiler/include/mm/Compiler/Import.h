//===- Import.h - Hugging Face MiniMax config -> mm module ------*- C++ -*-===//
#ifndef MM_COMPILER_IMPORT_H
#define MM_COMPILER_IMPORT_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/JSON.h"

#include <map>
#include <string>
#include <vector>

namespace mm {

/// How one layer's MoE weights are named in a checkpoint. Both prefixes occur
/// (`block_sparse_moe`: original MiniMax and transformers' save_pretrained;
/// `mlp`: transformers' in-memory state_dict), with experts either per expert
/// (`experts.{e}.w1/w2/w3.weight`) or fused (`experts.gate_up_proj` [E, 2I, H],
/// gate rows first, and `experts.down_proj` [E, H, I]).
struct MoENaming {
  std::string routerPrefix = "block_sparse_moe";  // "<prefix>.gate.weight"
  std::string expertsPrefix = "block_sparse_moe"; // "<prefix>.experts..."
  bool fused = false;
};

/// The model hyper-parameters the `mm` graph depends on, normalised from either
/// config.json schema (current transformers names or original MiniMax names).
struct ModelConfig {
  std::string name = "forward";
  int64_t vocabSize = 0, hiddenSize = 0, intermediateSize = 0;
  int64_t numLayers = 0, numHeads = 0, numKvHeads = 0, headDim = 0;
  int64_t numExperts = 0, topK = 0, blockSize = 256, rotaryDim = 0;
  double rmsNormEps = 1e-6, ropeTheta = 10000.0;
  bool tieWordEmbeddings = false;
  std::vector<bool> isLinearLayer; // true: lightning, false: softmax
  double linearAlpha = 1, linearBeta = 1, fullAlpha = 1, fullBeta = 1,
         mlpAlpha = 1, mlpBeta = 1;
  /// Per layer; empty means per-expert `block_sparse_moe` names throughout.
  std::vector<MoENaming> moeNaming;
};

/// One tensor of a checkpoint as its safetensors header describes it.
struct TensorInfo {
  std::vector<int64_t> shape;
  std::string dtype; // "F32", "BF16", ...
  std::string file;  // the file holding it, for messages
};

/// The tensors of a checkpoint, read from its safetensors headers only.
struct CheckpointHeaders {
  std::string description; // the files, for messages
  std::map<std::string, TensorInfo> tensors;
};

/// The full shape of every checkpoint tensor a module reads, by name (stacked
/// `{e}` names expanded per expert; a sliced weight listed with the shape of
/// the whole tensor).
using TensorShapes = std::map<std::string, std::vector<int64_t>>;

/// Finds each layer's MoE naming (MoENaming) among `headers` and stores it in
/// `config.moeNaming`. Fails, naming the layer and the tensors looked for, when
/// a layer has no expert weights or names them two ways.
bool detectMoENaming(const CheckpointHeaders &headers, ModelConfig &config,
                     std::string &error);

/// Checks the checkpoint against the model: every tensor in `expected` exists
/// with that shape and a float dtype (F32, BF16, F16), and the checkpoint holds
/// nothing else apart from the derived lightning decay buffers that
/// transformers saves (whose shapes must agree with the config too). The
/// message names the file and the tensor.
bool checkCheckpoint(const ModelConfig &config, const TensorShapes &expected,
                     const CheckpointHeaders &headers, std::string &error);

/// Reads and checks a config.json object. On failure returns false and sets
/// `error` to a one-line message naming the offending field.
bool parseModelConfig(const llvm::json::Object &json, ModelConfig &config,
                      std::string &error);

/// Builds the whole-model `func.func @forward(ids) -> logits` in the mm
/// dialect, with weights named as in Hugging Face checkpoints (MoE weights as
/// `config.moeNaming` says). Fills `expected`, when given, with every tensor
/// the module reads.
mlir::OwningOpRef<mlir::ModuleOp> buildModel(mlir::MLIRContext *ctx,
                                             const ModelConfig &config,
                                             TensorShapes *expected = nullptr);

} // namespace mm

#endif // MM_COMPILER_IMPORT_H
