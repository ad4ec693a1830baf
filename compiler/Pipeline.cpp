//===- Pipeline.cpp - the --mm-compile pipeline ---------------------------===//

#include "mm/Compiler/Passes.h"

#include "mlir/Pass/PassOptions.h"
#include "mlir/Pass/PassRegistry.h"

using namespace mlir;

namespace {
struct CompilePipelineOptions
    : public PassPipelineOptions<CompilePipelineOptions> {
  Option<int64_t> maxBatch{*this, "max-batch",
                           llvm::cl::desc("Largest batch to run"),
                           llvm::cl::init(1)};
  Option<int64_t> maxSeq{*this, "max-seq",
                         llvm::cl::desc("Largest sequence length to run"),
                         llvm::cl::init(2048)};
  Option<std::string> target{*this, "target",
                             llvm::cl::desc("cpu, sm_80, sm_89 or sm_90a"),
                             llvm::cl::init("cpu")};
  Option<std::string> artifact{*this, "artifact",
                               llvm::cl::desc("The .mmb file to write")};
};
} // namespace

void mm::buildMMCompilePipeline(OpPassManager &pm,
                                const CompileOptions &options) {
  pm.addPass(createLowerToMMXPass(
      {options.maxBatch, options.maxSeq, options.target}));
  pm.addPass(createFusePass());
  pm.addPass(createTilePass());
  pm.addPass(createCodegenCudaPass());
  pm.addPass(createPlanMemoryPass({/*report=*/true}));
  pm.addPass(createSerializePass({options.artifact}));
}

void mm::registerMMCompilePipeline() {
  PassPipelineRegistration<CompilePipelineOptions>(
      "mm-compile",
      "Compile an mm model to a .mmb artifact (lower to mmx, fuse, tile, "
      "CUDA codegen, plan memory, serialize)",
      [](OpPassManager &pm, const CompilePipelineOptions &o) {
        buildMMCompilePipeline(pm, {o.maxBatch, o.maxSeq, o.target,
                                    o.artifact});
      });
}
