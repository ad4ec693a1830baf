//===- MMXDialect.cpp - the mmx execution dialect -------------------------===//
#include "mmx/MMXDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mmx;

#include "mmx/MMXDialect.cpp.inc"

#define GET_TYPEDEF_CLASSES
#include "mmx/MMXTypes.cpp.inc"

void MMXDialect::initialize() {
  addTypes<
#define GET_TYPEDEF_LIST
#include "mmx/MMXTypes.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "mmx/MMXOps.cpp.inc"
      >();
}

FailureOr<SmallVector<Dim>>
mmx::parseShape(ArrayAttr shape, function_ref<InFlightDiagnostic()> emitError) {
  SmallVector<Dim> dims;
  for (Attribute a : shape) {
    if (auto i = dyn_cast<IntegerAttr>(a)) {
      if (i.getInt() < 0)
        return emitError() << "expects non-negative dims but got "
                           << i.getInt();
      dims.push_back({DimKind::Const, i.getInt()});
    } else if (auto s = dyn_cast<StringAttr>(a);
               s && (s.getValue() == "B" || s.getValue() == "T")) {
      dims.push_back({s.getValue() == "B" ? DimKind::Batch : DimKind::Seq, 0});
    } else {
      return emitError() << "expects shape entries to be integers, \"B\" or "
                            "\"T\" but got "
                         << a;
    }
  }
  return dims;
}

int64_t mmx::elementBytes(Type dtype) {
  if (dtype.isF32() || dtype.isInteger(32))
    return 4;
  if (dtype.isBF16() || dtype.isF16())
    return 2;
  return 0;
}

int64_t mmx::maxBytes(Type dtype, ArrayRef<Dim> shape, int64_t maxBatch,
                      int64_t maxSeq) {
  int64_t n = elementBytes(dtype);
  for (const Dim &d : shape)
    n *= d.kind == DimKind::Const   ? d.value
         : d.kind == DimKind::Batch ? maxBatch
                                    : maxSeq;
  return n;
}

ArrayAttr mmx::buildShapeAttr(MLIRContext *ctx, ArrayRef<Dim> dims) {
  Builder b(ctx);
  SmallVector<Attribute> attrs;
  for (const Dim &d : dims) {
    if (d.kind == DimKind::Const)
      attrs.push_back(b.getI64IntegerAttr(d.value));
    else
      attrs.push_back(b.getStringAttr(d.kind == DimKind::Batch ? "B" : "T"));
  }
  return b.getArrayAttr(attrs);
}

static LogicalResult verifyBuffer(Operation *op, Type dtype, ArrayAttr shape,
                                  bool allowSymbolic) {
  if (elementBytes(dtype) == 0)
    return op->emitOpError()
           << "expects dtype f32, i32, bf16 or f16 but got " << dtype;
  auto dims = parseShape(shape, [&] { return op->emitOpError(); });
  if (failed(dims))
    return failure();
  if (!allowSymbolic)
    for (const Dim &d : *dims)
      if (d.kind != DimKind::Const)
        return op->emitOpError() << "expects a static shape but got " << shape;
  return success();
}

LogicalResult ProgramOp::verify() {
  int64_t maxBatch = getMaxBatch(), maxSeq = getMaxSeq();
  if (maxBatch < 1 || maxSeq < 1)
    return emitOpError() << "expects max_batch and max_seq >= 1 but got "
                         << maxBatch << " and " << maxSeq;
  return success();
}

LogicalResult InputOp::verify() {
  return verifyBuffer(*this, getDtype(), getShape(), /*allowSymbolic=*/true);
}

LogicalResult WeightOp::verify() {
  if (failed(verifyBuffer(*this, getDtype(), getShape(),
                          /*allowSymbolic=*/false)))
    return failure();
  std::optional<uint64_t> axis = getSliceAxis(), offset = getSliceOffset();
  if (!axis && !offset)
    return success();
  if (!axis || !offset)
    return emitOpError()
           << "expects slice_axis and slice_offset together but got only "
           << (axis ? "slice_axis" : "slice_offset");
  // I64Attr getters are unsigned: reinterpret to see negative values.
  int64_t a = static_cast<int64_t>(*axis), o = static_cast<int64_t>(*offset);
  int64_t rank = static_cast<int64_t>(getShape().size());
  if (a < 0 || a >= rank)
    return emitOpError() << "expects slice_axis in [0, " << rank << ") but got "
                         << a;
  if (o < 0)
    return emitOpError() << "expects a non-negative slice_offset but got " << o;
  if (getName().contains("{e}"))
    return emitOpError() << "expects a sliced weight not to be stacked over "
                            "{e} but got '"
                         << getName() << "'";
  return success();
}

LogicalResult StateOp::verify() {
  if (!getDtype().isF32())
    return emitOpError() << "expects dtype f32 but got " << getDtype();
  return verifyBuffer(*this, getDtype(), getShape(), /*allowSymbolic=*/false);
}

LogicalResult AllocOp::verify() {
  // I64Attr getters are unsigned: reinterpret to see negative values.
  if (getOffset() && static_cast<int64_t>(*getOffset()) < 0)
    return emitOpError() << "expects a non-negative offset but got "
                         << static_cast<int64_t>(*getOffset());
  return verifyBuffer(*this, getDtype(), getShape(), /*allowSymbolic=*/true);
}

#define GET_OP_CLASSES
#include "mmx/MMXOps.cpp.inc"
