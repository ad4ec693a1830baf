#!/usr/bin/env bash
# Host side of the issue-5 benchmark: builds what the GPU run needs into DIR (no GPU needed here;
# the device machine has no MLIR/flatbuffers, so binaries and artifacts are made here).
# usage: tools/bench/prepare.sh BUILD_DIR DIR
set -euo pipefail
build=$(cd "$1" && pwd)
mkdir -p "$2"
dir=$(cd "$2" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}

echo "== kernel benchmark binary (nvcc, sm_90a)"
"$nvcc" -std=c++17 -O2 -lineinfo -gencode arch=compute_90a,code=sm_90a -I"$src" \
  "$src/test/gpu/KernelTests.cu" -o "$dir/mm-gpu-kernel-tests" "$build/lib/libmm_runtime.a" -ldl
cp "$src/tools/bench/peers.py" "$src/tools/bench/report.py" "$src/tools/bench/run_all.sh" "$dir/"
mkdir -p "$dir/models/small"
cp "$src/models/small/config.json" "$dir/models/small/"
if [ -x "$src/tools/bench/prefill_prepare.sh" ]; then
  "$src/tools/bench/prefill_prepare.sh" "$build" "$dir/prefill"
fi
du -sh "$dir"
