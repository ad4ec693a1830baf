#!/bin/sh
# Builds the moe_grad GPU test: moe_grad.sh OUTDIR (run from the repository
# root). OUTDIR gets moe_grad.cubin and moe_grad_test.
set -e
OUT=${1:?usage: moe_grad.sh OUTDIR}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
mkdir -p "$OUT"
nvcc -std=c++17 -O3 -cubin -arch=sm_90a -I"$ROOT" \
  "$ROOT/test/gpu/train/moe_grad_entries.cu" -o "$OUT/moe_grad.cubin"
g++ -std=c++17 -O2 -I"$ROOT" -I/usr/local/cuda/include \
  "$ROOT/test/gpu/train/moe_grad_test.cpp" /work/ref/libmm_runtime.a \
  -L/usr/local/cuda/lib64/stubs -lcuda -ldl -o "$OUT/moe_grad_test"
