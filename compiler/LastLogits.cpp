//===- LastLogits.cpp - logits of the last position only ------------------===//
//
// Prefill needs the next-token distribution alone; projecting every position
// to the vocabulary would cost T x V x 4 bytes of output (128 GB at 1M tokens
// of a 32000-token vocabulary) and 2·T·H·V FLOPs for nothing.
//
//===----------------------------------------------------------------------===//

#include "mm/Compiler/Passes.h"

#include "mlir/IR/Builders.h"

#define DEBUG_TYPE "mm-last-logits"

namespace mm {
#define GEN_PASS_DEF_LASTLOGITSPASS
#include "mm/Compiler/Passes.h.inc"
} // namespace mm

using namespace mlir;

namespace {

struct LastLogitsPass : mm::impl::LastLogitsPassBase<LastLogitsPass> {
  using Base::Base;

  void runOnOperation() override {
    if (logits != "all" && logits != "last") {
      getOperation().emitError()
          << "mm-last-logits expects logits all or last but got '" << logits
          << "'";
      return signalPassFailure();
    }
    if (logits == "all")
      return;
    for (auto program : getOperation().getOps<mmx::ProgramOp>()) {
      Block &body = program.getBody().front();
      llvm::DenseSet<Value> outputs;
      for (auto out : body.getOps<mmx::OutputOp>())
        outputs.insert(out.getBuffer());
      int64_t changed = 0;
      for (auto l : body.getOps<mmx::LaunchOp>()) {
        if (l.getKernel() != "logits" || !outputs.contains(l.getOuts()[0]))
          continue;
        if (failed(lastOnly(l)))
          return signalPassFailure();
        ++changed;
      }
      if (changed == 0) {
        program.emitOpError()
            << "expects a logits launch whose result is a "
               "program output for logits=last but found none";
        return signalPassFailure();
      }
    }
  }

  LogicalResult lastOnly(mmx::LaunchOp l) {
    auto alloc = l.getOuts()[0].getDefiningOp<mmx::AllocOp>();
    if (!alloc)
      return l.emitOpError() << "expects its result in an mmx.alloc";
    auto dims =
        mmx::parseShape(alloc.getShape(), [&] { return alloc.emitOpError(); });
    if (failed(dims))
      return failure();
    if (dims->size() != 3 || (*dims)[1].kind != mmx::DimKind::Seq)
      return alloc.emitOpError() << "expects logits of shape [B, T, V] but got "
                                 << alloc.getShape();
    for (Operation *user : alloc.getResult().getUsers())
      if (!isa<mmx::OutputOp>(user) && user != l.getOperation())
        return user->emitOpError()
               << "reads the logits, which logits=last reduces to the last "
                  "position";
    (*dims)[1] = {mmx::DimKind::Const, 1};
    OpBuilder b(l);
    alloc.setShapeAttr(mmx::buildShapeAttr(b.getContext(), *dims));
    NamedAttrList params(l.getParams());
    params.set("last_position", b.getI64IntegerAttr(1));
    l.setParamsAttr(params.getDictionary(b.getContext()));
    return success();
  }
};

} // namespace
