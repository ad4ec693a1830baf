//===- mm-opt.cpp - the mm optimizer driver
//--------------------------------===//
//
// MlirOptMain with the mm/mmx dialects, passes and the --mm-compile pipeline.
//
//===----------------------------------------------------------------------===//

#include "mm/Compiler/Registration.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mm::registerAllMM(registry);
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "mm optimizer and compiler driver\n", registry));
}
