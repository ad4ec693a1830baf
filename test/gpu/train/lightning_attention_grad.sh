#!/bin/bash
# Builds the lightning_attention_grad GPU test into OUTDIR: the cubin of
# test/gpu/train/lightning_attention_grad_entries.cu and the host test binary
# (linked with the prebuilt CPU reference, /work/ref/libmm_runtime.a).
# Run: OUTDIR/lightning_attention_grad_test OUTDIR/lightning_attention_grad.cubin [--bench]
set -euo pipefail
OUT=${1:?usage: lightning_attention_grad.sh OUTDIR}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
mkdir -p "$OUT"
nvcc -std=c++17 -O3 -cubin -arch=sm_90a -I"$ROOT" \
  "$ROOT/test/gpu/train/lightning_attention_grad_entries.cu" \
  -o "$OUT/lightning_attention_grad.cubin"
g++ -std=c++17 -O2 -I"$ROOT" -I/usr/local/cuda/include \
  "$ROOT/test/gpu/train/lightning_attention_grad_test.cpp" \
  /work/ref/libmm_runtime.a -L/usr/local/cuda/lib64/stubs -lcuda -ldl -lpthread \
  -o "$OUT/lightning_attention_grad_test"
