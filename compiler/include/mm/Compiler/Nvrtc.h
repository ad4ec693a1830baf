//===- Nvrtc.h - compile generated CUDA C++ to a cubin ----------*- C++ -*-===//
//
// NVRTC is loaded with dlopen on first use (libnvrtc.so from the CUDA toolkit:
// $MM_NVRTC, then the loader's search path, then $CUDA_HOME/lib64 and
// /usr/local/cuda/lib64), so the compiler builds and runs for the CPU target on
// machines without the toolkit. The kernels/ headers are embedded at build
// time and handed to NVRTC by name; no toolkit header is needed.
//
//===----------------------------------------------------------------------===//
#ifndef MM_COMPILER_NVRTC_H
#define MM_COMPILER_NVRTC_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace mm {

struct CubinResult {
  std::vector<char> cubin;
  double compileMs = 0; // wall time of nvrtcCompileProgram
};

/// Compiles `source` for `arch` ("sm_80", "sm_89", "sm_90a"). Errors carry the
/// NVRTC log.
llvm::Expected<CubinResult> compileCudaToCubin(llvm::StringRef source,
                                               llvm::StringRef arch);

} // namespace mm

#endif // MM_COMPILER_NVRTC_H
