#!/usr/bin/env bash
# The GPU half of tools/bench/prefill.sh (see there): usage prefill_device.sh DIR OUT_DIR.
# Every section runs even if an earlier one failed; a summary table comes last.
set -uo pipefail
dir=$(cd "$1" && pwd)
out=${2:-$dir/results}
mkdir -p "$out"
cd "$dir"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
w=/tmp/mm-prefill
mkdir -p $w
declare -a sums
echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"

echo; echo "== 0. random bf16 weights (models/tiny/gen_weights.py, seed 0)"
SECONDS=0
$py gen_weights.py --config small/config.json --dtype bf16 -o $w/small.safetensors
$py gen_weights.py --config tiny/config.json --dtype bf16 -o $w/tiny_bf16.safetensors >/dev/null
echo "   ${SECONDS} s"
$py -c "
import numpy as np
r = np.random.default_rng(1)
np.save('$w/ids8k.npy', r.integers(0, 32000, (1, 8192)).astype(np.int32))
np.save('$w/ids1m.npy', r.integers(0, 32000, (1, 1048576)).astype(np.int32))"

echo; echo "== 1. tiny bf16 artifact on cuda vs the float64 reference (run_e2e.py --bf16: rel tol 3e-2)"
$py e2e/run_e2e.py --mm-run ./mm-run --artifact tiny_bf16_sm_90a.mmb --config tiny/config.json \
  --weights $w/tiny_bf16.safetensors --extra "--backend cuda" --bf16 --tmp $w/e2e 2>&1 | tee $out/tiny_bf16_cuda.log
sums+=("tiny bf16 cuda vs f64 reference: $(tail -1 $out/tiny_bf16_cuda.log | cut -d' ' -f1-2)")

echo; echo "== 2. transformers goldens, bf16 artifacts on cuda (rel tol 3e-2)"
$py golden/run_parity.py --bin . --golden golden --tmp golden-work --backend cuda --stage run \
  --dtype bf16 2>&1 | tee $out/golden_bf16_cuda.log
sums+=("goldens bf16 cuda: $(tail -1 $out/golden_bf16_cuda.log)")

echo; echo "== 3. ours: small, bf16, logits=last, B=1 T=8192, median of 10 + profile"
./mm-run small_8192.mmb --weights $w/small.safetensors --input-ids $w/ids8k.npy --backend cuda \
  --repeat 10 --profile --dump-logits $w/ours8k.npy 2>&1 | tee $out/ours_8k.log
ours=$(grep -o 'median [0-9.]* ms' $out/ours_8k.log | head -1 | awk '{print $2}')
sums+=("ours T=8192: median ${ours:-FAILED} ms = $($py -c "print('%.0f' % (8192 / $ours * 1e3))" 2>/dev/null || echo '?') tok/s")

echo; echo "== 4. HF transformers eager, same GPU, B=1 T=8192"
$py hf_prefill.py --config small/config.json --seq 8192 --repeat 10 2>&1 | grep -v Warning | tee $out/hf_8k.log
hf=$(grep -o 'median [0-9.]* ms' $out/hf_8k.log | head -1 | awk '{print $2}')
sums+=("HF eager T=8192 (logits_to_keep=1): median ${hf:-FAILED} ms")
[ -n "$ours" ] && [ -n "$hf" ] && sums+=("speedup ours / HF eager: $($py -c "print('%.2f' % ($hf / $ours))")x (target 10x)")

echo; echo "== 5. ours: B=1 T=1048576, once (weights upload counted in load, not in the pass)"
(while sleep 1; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; done) > $out/mem_1m.txt 2>/dev/null &
mon=$!
timeout 200 ./mm-run small_1048576.mmb --weights $w/small.safetensors --input-ids $w/ids1m.npy \
  --backend cuda --dump-logits $w/ours1m.npy 2>&1 | tee $out/ours_1m.log
kill $mon 2>/dev/null
$py -c "import numpy as np; a = np.load('$w/ours1m.npy'); print('1M logits', a.shape, 'finite', bool(np.isfinite(a).all()), 'std %.3f' % a.std())" 2>&1 | tee -a $out/ours_1m.log
sums+=("ours T=1M: $(grep -o '1 forward pass [0-9.]* ms' $out/ours_1m.log || echo FAILED); peak nvidia-smi used $(sort -n $out/mem_1m.txt | tail -1) MiB")
grep "arena" small_1048576.plan.txt | head -1

echo; echo "== summary"
for s in "${sums[@]}"; do echo "$s"; done
