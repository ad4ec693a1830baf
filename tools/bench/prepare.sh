#!/usr/bin/env bash
# Host side of the issue-5 benchmark and the post-merge GPU check: builds everything the GPU run
# needs into DIR (no GPU needed here; the device machine has no MLIR/flatbuffers, so binaries and
# artifacts are made here). Then, on the GPU machine: bash DIR/run_all.sh DIR OUT.
# usage: tools/bench/prepare.sh BUILD_DIR DIR
set -euo pipefail
build=$(cd "$1" && pwd)
mkdir -p "$2"
dir=$(cd "$2" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-/usr/bin/python3}

echo "== GPU tests (kernel tests, tiny/medium/goldens on cuda, memcheck): test/gpu/prepare.sh"
"$src/test/gpu/prepare.sh" "$build" "$dir/gpu" "$python"
echo "== whole-model prefill (small, bf16, logits=last; 8K and 1M): tools/bench/prefill.sh"
"$src/tools/bench/prefill.sh" "$build" "$dir/prefill"
echo "== head_dim 128 bf16 model (the chunk-parallel lightning path through the runtime)"
mkdir -p "$dir/d128"
cp "$src/test/gpu/d128/config.json" "$dir/d128/"
"$build/bin/mm-import" "$src/test/gpu/d128" -o "$dir/d128/m.mlir"
"$build/bin/mm-opt" "$dir/d128/m.mlir" -o /dev/null \
  --mm-compile="max-batch=2 max-seq=300 target=sm_90a dtype=bf16 artifact=$dir/d128/d128_bf16.mmb"
rm -f "$dir/d128/m.mlir"
cp "$src/tools/bench/peers.py" "$src/tools/bench/report.py" "$src/tools/bench/run_all.sh" "$dir/"
du -sh "$dir"
