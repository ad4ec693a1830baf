#!/usr/bin/env bash
# Whole-model prefill benchmark of the `small` preset (TARGETS.md, issue 5), in two halves:
#   here (no GPU):  tools/bench/prefill.sh BUILD_DIR DIR
#     imports models/small, compiles it for sm_90a with dtype=bf16 logits=last at max-seq 8192
#     and 1048576, compiles the bf16 tiny model and the transformers goldens for the cuda checks,
#     and copies what the GPU machine needs (mm-run, scripts, configs) into DIR;
#   on the GPU machine:  bash DIR/prefill_device.sh DIR OUT_DIR
#     generates the random bf16 weights there (models/tiny/gen_weights.py), checks bf16 on cuda,
#     times ours at T=8192 (median of 10, per-kernel profile), HF transformers eager at T=8192 in
#     the same run, and ours at T=1M once (time, planned vs used memory). See
#     bench/results/prefill.md for the numbers.
set -euo pipefail
build=$(cd "$1" && pwd)
mkdir -p "$2"
dir=$(cd "$2" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-/usr/bin/python3}
bin=$build/bin

"$bin/mm-import" "$src/models/small" -o "$dir/small.mlir"
for seq in 8192 1048576; do
  "$bin/mm-opt" "$dir/small.mlir" -o /dev/null \
    --mm-compile="max-batch=1 max-seq=$seq target=sm_90a dtype=bf16 logits=last artifact=$dir/small_$seq.mmb" \
    2>&1 | tee "$dir/small_$seq.plan.txt"
done
"$bin/mm-import" "$src/models/tiny" -o "$dir/tiny.mlir"
"$bin/mm-opt" "$dir/tiny.mlir" -o /dev/null \
  --mm-compile="max-batch=2 max-seq=48 target=sm_90a dtype=bf16 artifact=$dir/tiny_bf16_sm_90a.mmb"
mkdir -p "$dir/golden" "$dir/e2e" "$dir/small" "$dir/tiny"
for g in "$src"/test/golden/*/meta.json; do cp -r "$(dirname "$g")" "$dir/golden/"; done
cp "$src/test/golden/run_parity.py" "$dir/golden/"
"$python" "$src/test/golden/run_parity.py" --bin "$bin" --golden "$dir/golden" \
  --tmp "$dir/golden-work" --target sm_90a --dtype bf16 --stage compile | tail -1 || true
cp "$bin/mm-run" "$src/models/tiny/gen_weights.py" "$src/tools/bench/prefill_device.sh" \
  "$src/tools/bench/hf_prefill.py" "$dir/"
cp "$src/test/e2e/run_e2e.py" "$src/test/e2e/mm_reference.py" "$dir/e2e/"
cp "$src/models/small/config.json" "$dir/small/"
cp "$src/models/tiny/config.json" "$dir/tiny/"
rm -f "$dir"/*.mlir
du -sh "$dir"
