//===- MMDialect.h - the mm model dialect -----------------------*- C++ -*-===//
#ifndef MM_DIALECT_MMDIALECT_H
#define MM_DIALECT_MMDIALECT_H

#include "mlir/IR/Dialect.h"

#include "mm/MMDialect.h.inc"

#endif // MM_DIALECT_MMDIALECT_H
