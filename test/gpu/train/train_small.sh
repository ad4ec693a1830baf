#!/bin/bash
# Builds the train_small GPU test: the cubin of kernels/train_small.cuh's
# entries and the host test binary (linked with the prebuilt CPU references).
# Usage: test/gpu/train/train_small.sh OUTDIR
set -euo pipefail
OUT=${1:?usage: $0 OUTDIR}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
mkdir -p "$OUT"
nvcc -std=c++17 -O3 -cubin -arch=sm_90a -I"$ROOT" \
  "$ROOT/test/gpu/train/train_small_entries.cu" -o "$OUT/train_small.cubin"
g++ -std=c++17 -O2 -I"$ROOT" -I/usr/local/cuda/include \
  "$ROOT/test/gpu/train/train_small_test.cpp" /work/ref/libmm_runtime.a \
  -L/usr/local/cuda/lib64/stubs -lcuda -ldl -o "$OUT/train_small_test"
