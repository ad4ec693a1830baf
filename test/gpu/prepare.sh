#!/usr/bin/env bash
# Builds everything the GPU tests need on THIS machine (no GPU required: nvcc for the kernel test
# binary, mm-opt + NVRTC for the artifacts) into DIR, which run_gpu_tests.sh then runs on a GPU
# machine (the device machine lacks the MLIR/flatbuffers build dependencies).
# usage: test/gpu/prepare.sh BUILD_DIR DIR [PYTHON]
set -euo pipefail
build=$(cd "$1" && pwd)
dir=$2
python=${3:-/usr/bin/python3}
src=$(cd "$(dirname "$0")/../.." && pwd)
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

echo "== kernel test binary (nvcc, sm_90a)"
SECONDS=0
"$nvcc" -std=c++17 -O2 -lineinfo -gencode arch=compute_90a,code=sm_90a -I"$src" \
  "$src/test/gpu/KernelTests.cu" -o "$dir/mm-gpu-kernel-tests" "$build/lib/libmm_runtime.a" -ldl
echo "   built in ${SECONDS} s"

echo "== tiny model: import, compile for sm_90a (NVRTC); run_gpu_tests.sh writes the weights"
"$build/bin/mm-import" "$src/models/tiny" -o "$dir/tiny.mlir"
"$build/bin/mm-opt" "$dir/tiny.mlir" \
  --mm-compile="max-batch=2 max-seq=64 target=sm_90a artifact=$dir/tiny_sm_90a.mmb" -o "$dir/tiny_sm_90a.mmx.mlir"
echo "== medium model (hidden 256, 8 heads x 32, partial RoPE, 8 experts): T up to 300, ragged vs the 64-row tiles"
"$build/bin/mm-import" "$src/test/gpu/medium" -o "$dir/medium.mlir"
"$build/bin/mm-opt" "$dir/medium.mlir" \
  --mm-compile="max-batch=2 max-seq=300 target=sm_90a artifact=$dir/medium_sm_90a.mmb" -o /dev/null
echo "== transformers goldens (test/golden): artifacts for sm_90a"
mkdir -p "$dir/golden"
for g in "$src"/test/golden/*/meta.json; do cp -r "$(dirname "$g")" "$dir/golden/"; done
cp "$src/test/golden/run_parity.py" "$dir/golden/"
"$python" "$src/test/golden/run_parity.py" --bin "$build/bin" --golden "$dir/golden" \
  --tmp "$dir/golden-work" --target sm_90a --stage compile | tail -1
cp "$build/bin/mm-run" "$dir/"
mkdir -p "$dir/e2e" "$dir/tiny" "$dir/medium"
cp "$src/test/e2e/run_e2e.py" "$src/test/e2e/mm_reference.py" "$dir/e2e/"
cp "$src/models/tiny/config.json" "$dir/tiny/"
cp "$src/test/gpu/medium/config.json" "$dir/medium/"
cp "$src/test/gpu/run_gpu_tests.sh" "$src/models/tiny/gen_weights.py" "$dir/"
rm -f "$dir"/*.mlir
du -sh "$dir"
