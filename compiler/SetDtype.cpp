//===- SetDtype.cpp - storage type of weights and activations -------------===//
//
// The importer writes f32 everywhere; the storage type is a compile-time
// choice made here, on the mmx program, so that one mm module compiles to an
// f32 or a bf16 artifact. Kernels accumulate in fp32 either way.
//
//===----------------------------------------------------------------------===//

#include "mm/Compiler/Passes.h"

#include "mlir/IR/Builders.h"

#define DEBUG_TYPE "mm-set-dtype"

namespace mm {
#define GEN_PASS_DEF_SETDTYPEPASS
#include "mm/Compiler/Passes.h.inc"
} // namespace mm

using namespace mlir;

namespace {

/// Launches whose float result keeps f32: the vocabulary projection (the
/// program's logits) and the scalar loss.
bool keepsF32Result(mmx::LaunchOp l) {
  return l.getKernel() == "logits" || l.getKernel() == "cross_entropy";
}

struct SetDtypePass : mm::impl::SetDtypePassBase<SetDtypePass> {
  using Base::Base;

  void runOnOperation() override {
    if (dtype != "f32" && dtype != "bf16") {
      getOperation().emitError()
          << "mm-set-dtype expects dtype f32 or bf16 but got '" << dtype << "'";
      return signalPassFailure();
    }
    if (dtype == "f32")
      return;
    for (auto program : getOperation().getOps<mmx::ProgramOp>())
      if (failed(retype(program)))
        return signalPassFailure();
  }

  LogicalResult retype(mmx::ProgramOp program) {
    Block &body = program.getBody().front();
    if (!body.getOps<mmx::StateOp>().empty())
      return program.emitOpError()
             << "expects an inference program for dtype=bf16 but it has "
                "optimizer state (training runs in f32)";
    Type bf16 = BFloat16Type::get(program.getContext());
    llvm::DenseSet<Value> keep;
    for (auto l : body.getOps<mmx::LaunchOp>())
      if (keepsF32Result(l))
        keep.insert(l.getOuts().begin(), l.getOuts().end());
    for (Operation &op : body) {
      if (auto w = dyn_cast<mmx::WeightOp>(op)) {
        if (isa<FloatType>(w.getDtype()))
          w.setDtype(bf16);
      } else if (auto a = dyn_cast<mmx::AllocOp>(op)) {
        if (isa<FloatType>(a.getDtype()) && !keep.contains(a.getResult()))
          a.setDtype(bf16);
      }
    }
    // A program output must be f32 (the runtime's outputs are f32): only the
    // results kept above may be outputs.
    for (auto out : body.getOps<mmx::OutputOp>()) {
      auto alloc = out.getBuffer().getDefiningOp<mmx::AllocOp>();
      if (alloc && alloc.getDtype().isBF16())
        return out.emitOpError()
               << "expects a program output computed by logits or "
                  "cross_entropy with dtype=bf16 but '"
               << out.getName() << "' would be bf16";
    }
    return success();
  }
};

} // namespace
