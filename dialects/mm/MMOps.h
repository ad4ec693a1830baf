//===- MMOps.h - mm dialect ops ---------------------------------*- C++ -*-===//
#ifndef MM_DIALECT_MMOPS_H
#define MM_DIALECT_MMOPS_H

#include "mm/MMDialect.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#define GET_OP_CLASSES
#include "mm/MMOps.h.inc"

#endif // MM_DIALECT_MMOPS_H
