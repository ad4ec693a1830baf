//===- Registration.h - everything mm-opt knows about -----------*- C++ -*-===//
#ifndef MM_COMPILER_REGISTRATION_H
#define MM_COMPILER_REGISTRATION_H

#include "mlir/IR/DialectRegistry.h"

namespace mm {
/// Registers the mm/mmx/func dialects in `registry` and all mm passes and
/// pipelines globally.
void registerAllMM(mlir::DialectRegistry &registry);
} // namespace mm

#endif // MM_COMPILER_REGISTRATION_H
