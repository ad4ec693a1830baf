//===- MMDialect.cpp - the mm model dialect -------------------------------===//
#include "mm/MMDialect.h"
#include "mm/MMOps.h"

using namespace mlir;

#include "mm/MMDialect.cpp.inc"

void mm::MMDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "mm/MMOps.cpp.inc"
      >();
}
