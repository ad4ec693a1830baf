//===- Passes.h - mm compiler passes and pipelines --------------*- C++ -*-===//
#ifndef MM_COMPILER_PASSES_H
#define MM_COMPILER_PASSES_H

#include "mm/MMDialect.h"
#include "mmx/MMXDialect.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

#include <string>

namespace mm {

#define GEN_PASS_DECL
#include "mm/Compiler/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "mm/Compiler/Passes.h.inc"

/// Options of the whole --mm-compile pipeline.
struct CompileOptions {
  int64_t maxBatch = 1;
  int64_t maxSeq = 2048;
  std::string target = "cpu";
  std::string artifact;
  /// "inference" (logits) or "train" (mm-autodiff first; see Passes.td).
  std::string mode = "inference";
  /// Storage type of weights and activations: "f32" or "bf16" (mm-set-dtype).
  std::string dtype = "f32";
  /// "all" logits [B, T, V] or "last" [B, 1, V] (mm-last-logits).
  std::string logits = "all";
  /// Training: the mm-autodiff options.
  AutodiffPassOptions train;
};

/// [autodiff, in train mode] -> lower to mmx -> set dtype -> [last logits]
/// -> fuse -> tile -> CUDA codegen
/// (GPU targets) -> plan memory -> serialize (NVRTC for GPU targets).
void buildMMCompilePipeline(mlir::OpPassManager &pm,
                            const CompileOptions &options);

/// Registers --mm-compile with mm-opt.
void registerMMCompilePipeline();

} // namespace mm

#endif // MM_COMPILER_PASSES_H
