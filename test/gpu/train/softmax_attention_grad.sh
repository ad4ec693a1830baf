#!/bin/bash
# Builds the softmax_attention_grad GPU test: the cubin of its entries and the
# host test binary (linked with the prebuilt CPU reference backend).
#   test/gpu/train/softmax_attention_grad.sh OUTDIR
set -euo pipefail
OUT=${1:?usage: $0 OUTDIR}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
mkdir -p "$OUT"
nvcc -std=c++17 -O3 -cubin -arch=sm_90a -I"$ROOT" \
  "$ROOT/test/gpu/train/softmax_attention_grad_entries.cu" \
  -o "$OUT/softmax_attention_grad.cubin"
g++ -std=c++17 -O2 -I"$ROOT" -I/usr/local/cuda/include \
  "$ROOT/test/gpu/train/softmax_attention_grad_test.cpp" \
  /work/ref/libmm_runtime.a -L/usr/local/cuda/lib64/stubs -lcuda -ldl \
  -o "$OUT/softmax_attention_grad_test"
