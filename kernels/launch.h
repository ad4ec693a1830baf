// Launch plans of the multi-phase training kernels: the ABI between a kernel
// family (kernels/<family>.h: argument block, workspace size, plan) and the
// CUDA executor (runtime/cuda/CudaExecutor.cpp) or the GPU tests.
//
// A family's .cuh defines, through a macro MM_<FAMILY>_ENTRIES(prefix, T, D),
// one `extern "C" __global__` entry per phase, named prefix + suffix ("_rows",
// "_reduce", ...), each taking the family's argument block by value.
// mm-codegen-cuda emits that macro once per (element type, head dim) the
// program needs, with prefix "mm_<kernel>_<f32|bf16>[_d<D>]". The family's
// plan function (host side) fills the argument block's workspace-derived
// fields and lists the launches in order; the executor issues them on one
// stream, with that argument block, and nothing else: a phase that needs a
// zeroed accumulator zeroes it itself.
#pragma once

namespace mm {
namespace k {

/// One kernel launch of a plan: entry prefix + `suffix`, a grid, a block of
/// `threads` threads and `smem` bytes of dynamic shared memory (the executor
/// opts in above 48 KB).
struct Launch {
  const char *suffix;
  unsigned gx, gy, gz;
  unsigned threads;
  unsigned smem;
};

/// The most launches one plan may list.
constexpr int kMaxLaunches = 32;

} // namespace k
} // namespace mm
