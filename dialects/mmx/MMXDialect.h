//===- MMXDialect.h - the mmx execution dialect -----------------*- C++ -*-===//
#ifndef MM_DIALECT_MMXDIALECT_H
#define MM_DIALECT_MMXDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"

#include "mmx/MMXDialect.h.inc"

#define GET_TYPEDEF_CLASSES
#include "mmx/MMXTypes.h.inc"

#define GET_OP_CLASSES
#include "mmx/MMXOps.h.inc"

namespace mmx {

/// What a buffer dimension depends on (mirrors the artifact's DimKind).
enum class DimKind { Const, Batch, Seq };

struct Dim {
  DimKind kind;
  int64_t value; // the size when kind == Const
};

/// Parses a symbolic shape attribute (integers, "B" or "T"); on failure
/// reports through `emitError` and returns failure.
mlir::FailureOr<llvm::SmallVector<Dim>>
parseShape(mlir::ArrayAttr shape,
           llvm::function_ref<mlir::InFlightDiagnostic()> emitError);

/// Bytes per element of a buffer dtype, or 0 if the runtime has no such dtype.
int64_t elementBytes(mlir::Type dtype);

/// Bytes a buffer occupies at batch `maxBatch` and sequence `maxSeq`.
int64_t maxBytes(mlir::Type dtype, llvm::ArrayRef<Dim> shape, int64_t maxBatch,
                 int64_t maxSeq);

/// Builds the symbolic shape attribute for `dims`.
mlir::ArrayAttr buildShapeAttr(mlir::MLIRContext *ctx,
                               llvm::ArrayRef<Dim> dims);

} // namespace mmx

#endif // MM_DIALECT_MMXDIALECT_H
