#!/usr/bin/env bash
# Builds one GPU training-kernel test (no GPU needed):
#   test/gpu/train/build_kernel_test.sh FAMILY OUTDIR [LIBMM_RUNTIME]
# FAMILY is train_small, lightning_attention_grad, softmax_attention_grad or moe_grad. Writes
#   OUTDIR/FAMILY.cubin  the family's entries (test/gpu/train/FAMILY_entries.cu expands its
#                        MM_*_ENTRIES macros as mm-codegen-cuda does), nvcc -cubin for sm_90a;
#   OUTDIR/FAMILY_test   the host test (FAMILY_test.cpp): loads the cubin through the driver API and
#                        compares every plan with the CPU reference of LIBMM_RUNTIME (default
#                        build/lib/libmm_runtime.a). Run it on a GPU: FAMILY_test FAMILY.cubin [--bench].
set -euo pipefail
family=${1:?usage: build_kernel_test.sh FAMILY OUTDIR [LIBMM_RUNTIME]}
out=${2:?usage: build_kernel_test.sh FAMILY OUTDIR [LIBMM_RUNTIME]}
root=$(cd "$(dirname "$0")/../../.." && pwd)
lib=${3:-$root/build/lib/libmm_runtime.a}
cuda=${CUDA_HOME:-/usr/local/cuda}
nvcc=$(command -v nvcc || echo "$cuda/bin/nvcc")
[ -f "$root/test/gpu/train/${family}_test.cpp" ] || { echo "unknown family '$family'" >&2; exit 1; }
[ -f "$lib" ] || { echo "no CPU runtime library at $lib (build the project first)" >&2; exit 1; }
mkdir -p "$out"
"$nvcc" -std=c++17 -O3 -cubin -arch=sm_90a -I"$root" \
  "$root/test/gpu/train/${family}_entries.cu" -o "$out/$family.cubin"
g++ -std=c++17 -O2 -I"$root" -I"$cuda/include" "$root/test/gpu/train/${family}_test.cpp" \
  "$lib" -L"$cuda/lib64/stubs" -lcuda -ldl -lpthread -o "$out/${family}_test"
