//===- Registration.cpp - register mm dialects, passes, pipelines ---------===//

#include "mm/Compiler/Registration.h"
#include "mm/Compiler/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

void mm::registerAllMM(mlir::DialectRegistry &registry) {
  registry.insert<mm::MMDialect, mmx::MMXDialect, mlir::func::FuncDialect>();
  registerMMPasses();
  registerMMCompilePipeline();
}
