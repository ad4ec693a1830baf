#!/bin/bash
# build variant: bv.sh NAME "DEFS"
set -e
root=$(cd "$(dirname "$0")/../../.." && pwd); out=${OUTROOT:-.carry-moegrad3}/$1; mkdir -p $out
nvcc -std=c++17 -O3 -cubin -arch=sm_90a -I$root $2 $root/test/gpu/train/moe_grad_entries.cu -o $out/moe_grad.cubin
g++ -std=c++17 -O2 -I$root -I/usr/local/cuda/include $2 $root/test/gpu/train/moe_grad_test.cpp /work/ref/libmm_runtime.a -L/usr/local/cuda/lib64/stubs -lcuda -ldl -lpthread -o $out/moe_grad_test
