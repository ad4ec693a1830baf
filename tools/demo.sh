#!/usr/bin/env bash
# `make demo`: the built-in tiny model, end to end: weights -> import -> compile -> run.
# usage: tools/demo.sh BUILD_DIR [PYTHON]
set -euo pipefail
build=${1:-build}
python=${2:-/usr/bin/python3}
src=$(cd "$(dirname "$0")/.." && pwd)
bin=$build/bin
work=$build/demo
mkdir -p "$work"

echo "== 1. random weights for models/tiny (deterministic, seed 0)"
"$python" "$src/models/tiny/gen_weights.py" --config "$src/models/tiny/config.json" -o "$work/tiny.safetensors"
echo "== 2. mm-import models/tiny -> $work/tiny.mlir"
"$bin/mm-import" "$src/models/tiny" -o "$work/tiny.mlir"
# With a GPU (and NVRTC for its code), compile for its architecture and run there; else the CPU.
target=cpu
backend=cpu
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' ')
  case "$cap" in
    9.0) target=sm_90a ;;
    8.9) target=sm_89 ;;
    8.*) target=sm_80 ;;
    *) echo "note: GPU compute capability $cap has no mm target; running on the CPU backend" ;;
  esac
  if [ "$target" != cpu ]; then backend=cuda; fi
fi
echo "== 3. mm-opt --mm-compile (target $target) -> $work/tiny.mmb"
"$bin/mm-opt" "$work/tiny.mlir" --mm-compile="max-batch=1 max-seq=64 target=$target artifact=$work/tiny.mmb" -o "$work/tiny.mmx.mlir"

echo "== 4. mm-run --backend $backend: 8-token prompt, 16 greedy tokens"
"$python" -c "import numpy as np; np.save('$work/prompt.npy', np.array([[1, 17, 42, 7, 99, 3, 64, 5]], dtype=np.int32))"
"$bin/mm-run" "$work/tiny.mmb" --weights "$work/tiny.safetensors" --input-ids "$work/prompt.npy" \
  --backend "$backend" --dump-logits "$work/logits.npy" --generate 16
"$python" -c "import numpy as np; l = np.load('$work/logits.npy'); print('logits', l.shape, l.dtype, 'last-token argmax', int(l[0, -1].argmax()))"
