#!/usr/bin/env bash
# End-to-end check of the built-in tiny model on the CPU backend:
# weights -> mm-import -> mm-opt --mm-compile -> mm-run, against the float64 NumPy reference.
# usage: tiny_e2e.sh BIN_DIR WORK_DIR [PYTHON]
set -euo pipefail
bin=$1
work=$2
python=${3:-/usr/bin/python3}
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work"

"$python" "$src/models/tiny/gen_weights.py" --config "$src/models/tiny/config.json" -o "$work/tiny.safetensors"
"$bin/mm-import" "$src/models/tiny" -o "$work/tiny.mlir"
# max-seq 48 covers the longest case (2*block_size+8 = 40) plus the generated tokens.
"$bin/mm-opt" "$work/tiny.mlir" --mm-compile="max-batch=2 max-seq=48 artifact=$work/tiny.mmb" -o /dev/null
"$python" "$src/test/e2e/run_e2e.py" --mm-run "$bin/mm-run" --artifact "$work/tiny.mmb" \
  --config "$src/models/tiny/config.json" --weights "$work/tiny.safetensors" --tmp "$work"

# The compiled artifact, corrupted at hundreds of offsets: mm-run must reject or run each copy,
# never crash or hang.
"$python" -c "import numpy as np; np.save('$work/corrupt_ids.npy', np.array([[3, 1, 4, 1, 5]], dtype=np.int32))"
"$python" "$src/test/runtime/corrupt_artifact.py" --mm-run "$bin/mm-run" --artifact "$work/tiny.mmb" \
  --weights "$work/tiny.safetensors" --input-ids "$work/corrupt_ids.npy" --count 300
