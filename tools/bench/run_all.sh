#!/usr/bin/env bash
# Device side (see tools/bench/prepare.sh): the GPU tests of the merged tree, ours and the peers in
# one run on one GPU, the whole-model prefill, then the issue-5 report. Sections run even if an
# earlier one failed. usage: run_all.sh DIR OUT  (flash-linear-attention's sources on PYTHONPATH)
set -uo pipefail
# PYTHONPATH entries made absolute: the peers run from another directory.
if [ -n "${PYTHONPATH:-}" ]; then
  abs=""
  IFS=: read -ra parts <<< "$PYTHONPATH"
  for p in "${parts[@]}"; do
    [ -d "$p" ] && p=$(cd "$p" && pwd)
    abs=${abs:+$abs:}$p
  done
  export PYTHONPATH=$abs
fi
dir=$(cd "$1" && pwd)
out=$2
mkdir -p "$out"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/device.txt"

echo; echo "######## 1. GPU tests (test/gpu/run_gpu_tests.sh)"
timeout 240 bash "$dir/gpu/run_gpu_tests.sh" "$dir/gpu" "$out/gpu" > "$out/gpu_tests.log" 2>&1
sed -n '/== summary/,$p' "$out/gpu_tests.log"

echo; echo "######## 2. head_dim 128 bf16 model on cuda (chunk-parallel lightning) vs float64 reference"
$py "$dir/gpu/gen_weights.py" --config "$dir/d128/config.json" --dtype bf16 -o /tmp/d128.safetensors >/dev/null
timeout 120 $py "$dir/gpu/e2e/run_e2e.py" --mm-run "$dir/gpu/mm-run" --artifact "$dir/d128/d128_bf16.mmb" \
  --config "$dir/d128/config.json" --weights /tmp/d128.safetensors --extra "--backend cuda" --bf16 \
  --tmp /tmp/d128-e2e 2>&1 | tail -12 | tee "$out/d128_bf16_cuda.log"

echo; echo "######## 3. ours: kernel sweep (KernelTests --bench-sweep)"
timeout 120 "$dir/gpu/mm-gpu-kernel-tests" --bench-sweep | tee "$out/ours.jsonl"

echo; echo "######## 4. peers (torch SDPA, fla chunk_lightning_attn, cuBLAS, HF eager)"
(cd "$dir" && timeout 200 $py peers.py --out "$out" --small-config "$dir/prefill/small/config.json") 2>&1 | grep -v Warning | tail -25

echo; echo "######## 5. whole-model prefill (tools/bench/prefill_device.sh)"
timeout 240 bash "$dir/prefill/prefill_device.sh" "$dir/prefill" "$out/prefill" > "$out/prefill.log" 2>&1
sed -n '/== summary/,$p' "$out/prefill.log"
ours=$(grep -o 'median [0-9.]* ms' "$out/prefill/ours_8k.log" 2>/dev/null | head -1 | awk '{print $2}')
hf=$(grep -o 'median [0-9.]* ms' "$out/prefill/hf_8k.log" 2>/dev/null | head -1 | awk '{print $2}')
onem=$(grep -o '1 forward pass [0-9.]* ms' "$out/prefill/ours_1m.log" 2>/dev/null | awk '{print $4}')
$py - "$ours" "$hf" "$onem" "$out/prefill.json" <<'PY'
import json, sys
ours, hf, onem, path = sys.argv[1:5]
d = {}
if ours: d["ours_ms_8k"] = float(ours); d["ours_tok_s_8k"] = 8192 / float(ours) * 1e3
if hf: d["hf_eager_ms_8k"] = float(hf); d["hf_eager_tok_s_8k"] = 8192 / float(hf) * 1e3
if onem: d["ours_1m_s"] = float(onem) / 1e3
json.dump(d, open(path, "w"), indent=1)
PY

echo; echo "######## 6. report"
$py "$dir/report.py" --peers "$out/peers.json" --ours "$out/ours.jsonl" --prefill "$out/prefill.json" --out "$out" | tail -30
