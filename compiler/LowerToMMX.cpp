//===- LowerToMMX.cpp - mm model function -> mmx program ------------------===//
//
// Every mm op except mm.param is one catalog kernel (docs/kernels.md) whose
// name is the op's mnemonic and whose params are the op's attributes, so the
// lowering is uniform: a result buffer plus one launch per op.
//
//===----------------------------------------------------------------------===//

#include "mm/Compiler/Passes.h"
#include "mm/MMOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

#define DEBUG_TYPE "mm-lower-to-mmx"

namespace mm {
#define GEN_PASS_DEF_LOWERTOMMXPASS
#include "mm/Compiler/Passes.h.inc"
} // namespace mm

using namespace mlir;

namespace {

/// Symbolic shape of a tensor: dynamic dims 0 and 1 are batch and sequence.
FailureOr<SmallVector<mmx::Dim>> symbolicShape(Operation *op, Value v) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type)
    return op->emitOpError()
           << "expects ranked tensors but got " << v.getType();
  SmallVector<mmx::Dim> dims;
  for (auto [i, d] : llvm::enumerate(type.getShape())) {
    if (!ShapedType::isDynamic(d)) {
      dims.push_back({mmx::DimKind::Const, d});
    } else if (i == 0) {
      dims.push_back({mmx::DimKind::Batch, 0});
    } else if (i == 1) {
      dims.push_back({mmx::DimKind::Seq, 0});
    } else {
      return op->emitOpError()
             << "expects only dims 0 (batch) and 1 (sequence) to be dynamic "
                "but got "
             << type;
    }
  }
  return dims;
}

StringRef bindingName(DictionaryAttr attrs, StringRef fallback) {
  if (attrs)
    if (auto name = attrs.getAs<StringAttr>("mm.name"))
      return name.getValue();
  return fallback;
}

struct LowerToMMXPass : mm::impl::LowerToMMXPassBase<LowerToMMXPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(checkOptions(module)))
      return signalPassFailure();
    auto funcs = llvm::to_vector(module.getOps<func::FuncOp>());
    if (funcs.size() != 1) {
      module.emitError() << "mm-lower-to-mmx expects exactly one func.func "
                            "(the model) but found "
                         << funcs.size();
      return signalPassFailure();
    }
    if (failed(lower(funcs.front())))
      return signalPassFailure();
  }

  LogicalResult checkOptions(ModuleOp module) {
    if (maxBatch < 1 || maxSeq < 1)
      return module.emitError()
             << "mm-lower-to-mmx expects max-batch and max-seq >= 1 but got "
             << maxBatch << " and " << maxSeq;
    static const char *kTargets[] = {"cpu", "sm_80", "sm_89", "sm_90a"};
    if (!llvm::is_contained(kTargets, StringRef(target)))
      return module.emitError()
             << "mm-lower-to-mmx expects target cpu, sm_80, sm_89 or sm_90a "
                "but got '"
             << target << "'";
    return success();
  }

  LogicalResult lower(func::FuncOp fn) {
    if (!fn.getBody().hasOneBlock())
      return fn.emitOpError() << "expects a single-block model function";
    MLIRContext *ctx = fn.getContext();
    Type bufferType = mmx::BufferType::get(ctx);
    OpBuilder b(fn);
    auto program = mmx::ProgramOp::create(
        b, fn.getLoc(), b.getStringAttr(fn.getSymName()),
        b.getStringAttr(target), b.getI64IntegerAttr(maxBatch),
        b.getI64IntegerAttr(maxSeq), IntegerAttr());
    program.getBody().push_back(new Block);
    b.setInsertionPointToStart(&program.getBody().front());

    IRMapping buffers;
    for (auto [i, arg] : llvm::enumerate(fn.getArguments())) {
      static const char *kDefaultInputs[] = {"input_ids", "labels"};
      std::string fallback =
          i < 2 ? kDefaultInputs[i] : "input" + std::to_string(i);
      auto dims = symbolicShape(fn, arg);
      if (failed(dims))
        return failure();
      auto type = cast<RankedTensorType>(arg.getType());
      auto input = mmx::InputOp::create(
          b, fn.getLoc(), bufferType,
          b.getStringAttr(bindingName(fn.getArgAttrDict(i), fallback)),
          TypeAttr::get(type.getElementType()),
          mmx::buildShapeAttr(ctx, *dims));
      buffers.map(arg, input.getResult());
    }

    for (Operation &op : fn.getBody().front()) {
      if (auto param = dyn_cast<mm::ParamOp>(op)) {
        auto type = param.getResult().getType();
        auto dims = symbolicShape(param, param.getResult());
        if (failed(dims))
          return failure();
        auto weight = mmx::WeightOp::create(
            b, param.getLoc(), bufferType, param.getNameAttr(),
            TypeAttr::get(type.getElementType()),
            mmx::buildShapeAttr(ctx, *dims), param.getSliceAxisAttr(),
            param.getSliceOffsetAttr());
        buffers.map(param.getResult(), weight.getResult());
        continue;
      }
      if (auto st = dyn_cast<mm::StateOp>(op)) {
        auto type = st.getResult().getType();
        auto dims = symbolicShape(st, st.getResult());
        if (failed(dims))
          return failure();
        auto state =
            mmx::StateOp::create(b, st.getLoc(), bufferType, st.getNameAttr(),
                                 TypeAttr::get(type.getElementType()),
                                 mmx::buildShapeAttr(ctx, *dims));
        buffers.map(st.getResult(), state.getResult());
        continue;
      }
      if (auto ret = dyn_cast<func::ReturnOp>(op)) {
        for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
          Value buffer = buffers.lookupOrNull(v);
          if (!buffer || !buffer.getDefiningOp<mmx::AllocOp>())
            return ret.emitOpError()
                   << "expects result " << i
                   << " to be computed by an mm op, not an input or weight";
          std::string fallback =
              cast<RankedTensorType>(v.getType()).getRank() == 0
                  ? "loss"
                  : (i == 0 ? "logits" : "output" + std::to_string(i));
          mmx::OutputOp::create(
              b, ret.getLoc(),
              b.getStringAttr(bindingName(fn.getResultAttrDict(i), fallback)),
              buffer);
        }
        continue;
      }
      if (!llvm::isa_and_nonnull<mm::MMDialect>(op.getDialect()))
        return op.emitOpError() << "cannot be lowered to mmx: only mm ops "
                                   "may appear in the model function";
      if (failed(lowerKernelOp(b, op, buffers)))
        return failure();
    }
    fn.erase();
    return success();
  }

  /// Optimizer updates write result i in place into operand inPlace[i].
  static ArrayRef<int> inPlaceOperands(Operation &op) {
    static const int kAdam[] = {0, 2, 3}, kCame[] = {0, 2, 3, 4, 5, 6};
    if (isa<mm::AdamWOp, mm::CameVectorOp>(op))
      return kAdam;
    if (isa<mm::CameOp>(op))
      return kCame;
    return {};
  }

  LogicalResult lowerKernelOp(OpBuilder &b, Operation &op, IRMapping &buffers) {
    SmallVector<Value> ins, outs;
    for (Value operand : op.getOperands())
      ins.push_back(buffers.lookup(operand));
    if (ArrayRef<int> inPlace = inPlaceOperands(op); !inPlace.empty()) {
      for (auto [i, result] : llvm::enumerate(op.getResults())) {
        Value target = ins[inPlace[i]];
        if (!target.getDefiningOp<mmx::WeightOp>() &&
            !target.getDefiningOp<mmx::StateOp>())
          return op.emitOpError()
                 << "updates operand " << inPlace[i]
                 << " in place, which must be an mm.param or mm.state";
        buffers.map(result, target);
        outs.push_back(target);
      }
      mmx::LaunchOp::create(
          b, op.getLoc(), b.getStringAttr(op.getName().stripDialect()), ins,
          outs, cast<DictionaryAttr>(op.getPropertiesAsAttribute()));
      return success();
    }
    for (Value result : op.getResults()) {
      auto dims = symbolicShape(&op, result);
      if (failed(dims))
        return failure();
      auto type = cast<RankedTensorType>(result.getType());
      auto alloc = mmx::AllocOp::create(
          b, op.getLoc(), mmx::BufferType::get(b.getContext()),
          TypeAttr::get(type.getElementType()),
          mmx::buildShapeAttr(b.getContext(), *dims), IntegerAttr());
      buffers.map(result, alloc.getResult());
      outs.push_back(alloc.getResult());
    }
    auto params =
        dyn_cast_or_null<DictionaryAttr>(op.getPropertiesAsAttribute());
    if (!params)
      params = b.getDictionaryAttr({});
    mmx::LaunchOp::create(b, op.getLoc(),
                          b.getStringAttr(op.getName().stripDialect()), ins,
                          outs, params);
    return success();
  }
};

} // namespace
