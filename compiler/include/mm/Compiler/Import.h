//===- Import.h - Hugging Face MiniMax config -> mm module ------*- C++ -*-===//
#ifndef MM_COMPILER_IMPORT_H
#define MM_COMPILER_IMPORT_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/JSON.h"

#include <string>
#include <vector>

namespace mm {

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
};

/// Reads and checks a config.json object. On failure returns false and sets
/// `error` to a one-line message naming the offending field.
bool parseModelConfig(const llvm::json::Object &json, ModelConfig &config,
                      std::string &error);

/// Builds the whole-model `func.func @forward(ids) -> logits` in the mm
/// dialect, with weights named as in Hugging Face checkpoints.
mlir::OwningOpRef<mlir::ModuleOp> buildModel(mlir::MLIRContext *ctx,
                                             const ModelConfig &config);

} // namespace mm

#endif // MM_COMPILER_IMPORT_H
