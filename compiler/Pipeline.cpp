//===- Pipeline.cpp - the --mm-compile pipeline ---------------------------===//

#include "mm/Compiler/Passes.h"

#include "mlir/Pass/PassOptions.h"
#include "mlir/Pass/PassRegistry.h"

using namespace mlir;

namespace {
enum class CompileMode { Inference, Train };

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
  // An enum, so that a misspelt mode is a parse error rather than inference.
  Option<CompileMode> mode{
      *this, "mode", llvm::cl::desc("inference or train"),
      llvm::cl::init(CompileMode::Inference),
      llvm::cl::values(
          clEnumValN(CompileMode::Inference, "inference", "forward only"),
          clEnumValN(CompileMode::Train, "train",
                     "forward, backward and optimizer update"))};
  Option<std::string> dtype{
      *this, "dtype",
      llvm::cl::desc("Storage type of weights and activations: f32 or bf16"),
      llvm::cl::init("f32")};
  Option<std::string> logits{
      *this, "logits",
      llvm::cl::desc("all ([B, T, V]) or last ([B, 1, V], the last position)"),
      llvm::cl::init("all")};
  // Training (mm-autodiff) options.
  Option<std::string> optimizer{
      *this, "optimizer", llvm::cl::desc("adamw, came or none (gradients)"),
      llvm::cl::init("adamw")};
  Option<double> beta1{*this, "beta1", llvm::cl::init(0.9)};
  Option<double> beta2{*this, "beta2", llvm::cl::init(0.999)};
  Option<double> beta3{*this, "beta3", llvm::cl::init(0.9999)};
  Option<double> eps{*this, "eps", llvm::cl::init(1e-8)};
  Option<double> weightDecay{*this, "weight-decay", llvm::cl::init(0.0)};
  Option<double> maxNorm{*this, "max-norm", llvm::cl::init(1.0)};
  Option<int64_t> chunkRows{*this, "chunk-rows", llvm::cl::init(1024)};
  Option<bool> recompute{*this, "recompute", llvm::cl::init(false)};
};
} // namespace

void mm::buildMMCompilePipeline(OpPassManager &pm,
                                const CompileOptions &options) {
  if (options.mode == "train")
    pm.addPass(createAutodiffPass(options.train));
  pm.addPass(
      createLowerToMMXPass({options.maxBatch, options.maxSeq, options.target}));
  pm.addPass(createSetDtypePass({options.dtype}));
  pm.addPass(createLastLogitsPass({options.logits}));
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
        CompileOptions c{o.maxBatch, o.maxSeq, o.target, o.artifact,
                         o.mode == CompileMode::Train ? "train" : "inference"};
        c.dtype = o.dtype;
        c.logits = o.logits;
        c.train = {o.optimizer,   o.beta1,   o.beta2,     o.beta3,    o.eps,
                   o.weightDecay, o.maxNorm, o.chunkRows, o.recompute};
        buildMMCompilePipeline(pm, c);
      });
}
