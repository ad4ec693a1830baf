//===- SetDtype.cpp - storage type of weights and activations -------------===//
//
// The importer writes f32 everywhere; the storage type is a compile-time
// choice made here, on the mmx program, so that one mm module compiles to an
// f32 or a bf16 artifact. Kernels accumulate in fp32 either way.
//
// A bf16 training program keeps fp32 where precision decides convergence:
// every weight gradient (and the sums that build it) stays f32, and each
// optimizer update runs on an fp32 master copy (an `mmx.state "master:<w>"`,
// initialised by the runtime from the loaded weight) followed by a
// `store_param` launch that writes the master, rounded to bf16, into the
// weight the forward and backward passes read.
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
/// program's logits), the scalar losses and the global gradient norm.
bool keepsF32Result(mmx::LaunchOp l) {
  return l.getKernel() == "logits" || l.getKernel() == "cross_entropy" ||
         l.getKernel() == "lm_head_loss" || l.getKernel() == "grad_norm";
}

bool isOptimizerUpdate(mmx::LaunchOp l) {
  return l.getKernel() == "adamw" || l.getKernel() == "came" ||
         l.getKernel() == "came_vector";
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
    Type bf16 = BFloat16Type::get(program.getContext());
    llvm::DenseSet<Value> keep;
    for (auto l : body.getOps<mmx::LaunchOp>())
      if (keepsF32Result(l))
        keep.insert(l.getOuts().begin(), l.getOuts().end());
    // Weight gradients: what the optimizers read, or the program returns as
    // "grad:<weight>" (optimizer=none), and the scaled_add sums feeding them.
    for (auto l : body.getOps<mmx::LaunchOp>())
      if (isOptimizerUpdate(l))
        keep.insert(l.getIns()[1]);
    for (auto out : body.getOps<mmx::OutputOp>())
      if (out.getName().starts_with("grad:"))
        keep.insert(out.getBuffer());
    for (Operation &op : llvm::reverse(body))
      if (auto l = dyn_cast<mmx::LaunchOp>(op))
        if (l.getKernel() == "scaled_add" && keep.contains(l.getOuts()[0]))
          keep.insert(l.getIns().begin(), l.getIns().end());
    for (Operation &op : body) {
      if (auto w = dyn_cast<mmx::WeightOp>(op)) {
        if (isa<FloatType>(w.getDtype()))
          w.setDtype(bf16);
      } else if (auto a = dyn_cast<mmx::AllocOp>(op)) {
        if (isa<FloatType>(a.getDtype()) && !keep.contains(a.getResult()))
          a.setDtype(bf16);
      }
    }
    for (auto l : llvm::make_early_inc_range(body.getOps<mmx::LaunchOp>()))
      if (isOptimizerUpdate(l) && failed(addMaster(l)))
        return failure();
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

  /// Makes optimizer update `l` run on an fp32 master state instead of the
  /// (now bf16) weight, then store the rounded master into the weight.
  LogicalResult addMaster(mmx::LaunchOp l) {
    auto weight = l.getIns()[0].getDefiningOp<mmx::WeightOp>();
    if (!weight)
      return l.emitOpError() << "expects an optimizer update of an mmx.weight";
    OpBuilder b(l);
    auto master = mmx::StateOp::create(
        b, l.getLoc(), l.getIns()[0].getType(),
        b.getStringAttr("master:" + weight.getName().str()),
        TypeAttr::get(b.getF32Type()), weight.getShape());
    l.getInsMutable()[0].set(master.getResult());
    l.getOutsMutable()[0].set(master.getResult());
    b.setInsertionPointAfter(l);
    mmx::LaunchOp::create(b, l.getLoc(), b.getStringAttr("store_param"),
                          ValueRange{master.getResult(), weight.getResult()},
                          ValueRange{weight.getResult()},
                          b.getDictionaryAttr({}));
    return success();
  }
};

} // namespace
