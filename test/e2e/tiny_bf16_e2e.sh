#!/usr/bin/env bash
# The bf16 artifact of the tiny model on the CPU backend (which holds bf16 activations as f32,
# rounded to bf16 after every step) against the float64 NumPy reference on the same bf16
# weights: run_e2e.py --bf16 (‖out−ref‖/‖ref‖ <= 3e-2 per case, up to each sequence's first
# near-tie routing; measured about 1e-2). Then logits=last, f32 and bf16: [B, 1, V] against the
# reference's last position (f32 at the usual 1e-5).
# usage: tiny_bf16_e2e.sh BIN_DIR WORK_DIR [PYTHON]
set -euo pipefail
bin=$1
work=$2
python=${3:-/usr/bin/python3}
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work"

"$python" "$src/models/tiny/gen_weights.py" --config "$src/models/tiny/config.json" --dtype bf16 \
  -o "$work/tiny_bf16.safetensors" >/dev/null
"$bin/mm-import" "$src/models/tiny" -o "$work/tiny.mlir"
for v in "bf16 all" "bf16 last" "f32 last"; do
  set -- $v
  "$bin/mm-opt" "$work/tiny.mlir" -o /dev/null \
    --mm-compile="max-batch=2 max-seq=48 dtype=$1 logits=$2 artifact=$work/tiny_$1_$2.mmb"
  "$python" "$src/test/e2e/run_e2e.py" --mm-run "$bin/mm-run" --artifact "$work/tiny_$1_$2.mmb" \
    --config "$src/models/tiny/config.json" --weights "$work/tiny_bf16.safetensors" \
    --tmp "$work/$1_$2" $([ "$1" = bf16 ] && echo --bf16)
done
