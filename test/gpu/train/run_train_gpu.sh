#!/usr/bin/env bash
# The GPU half of test/gpu/train/prepare_train.sh: usage run_train_gpu.sh DIR OUT_DIR [--no-hf].
# GOLDENS="tiny ..." limits section 2 to some goldens.
# 1. the training-kernel tests (SKIP_KERNELS=1 skips them) (every backward/optimizer kernel vs the CPU reference, f32 and bf16);
# 2. gradients on cuda: fp32 artifacts vs PyTorch autograd through transformers (<= 1e-4); bf16
#    artifacts vs PyTorch fp32 on the same bf16 weights and vs the CPU backend's bf16 run (<= 2e-2 on
#    the dense-routing goldens; reported for top-2 routing, where bf16 rounding flips near-tie expert
#    choices — PyTorch's own bf16 error on each golden is printed as the yardstick); 3 AdamW steps
#    (fp32) vs torch.optim.AdamW;
# 2b. activation recomputation (gradients vs torch) and CAME (losses vs the CPU backend) on cuda;
# 3. mm-run train on cuda: resume (same losses?), NaN reporting;
# 4. throughput: `small`, bf16, B=1 T=8192, AdamW, per-kernel profile; HF transformers eager training
#    in the same run (SKIP_THROUGHPUT=1 skips this). Every section runs even if an earlier one failed; a summary comes last.
set -uo pipefail
dir=$(cd "$1" && pwd)
out=${2:-$dir/results}
mkdir -p "$out"
cd "$dir"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
w=/tmp/mm-train
rm -rf $w; mkdir -p $w
declare -a sums
echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"

echo; echo "== 1. training-kernel tests (ONLY_KERNELS=\"a b\" picks some), and the forward kernel tests"
if [ -x ./mm-gpu-kernel-tests ] && [ -z "${SKIP_KERNELS:-}" ]; then
  timeout 300 ./mm-gpu-kernel-tests 2>&1 | tee $out/kernels_forward.log | grep -v "^ok" | tail -8
  sums+=("forward kernel tests: $(tail -1 $out/kernels_forward.log)")
fi
for t in ${ONLY_KERNELS:-train_small lightning_attention_grad softmax_attention_grad moe_grad}; do
  if [ -n "${SKIP_KERNELS:-}" ]; then
    sums+=("kernels $t: skipped (SKIP_KERNELS set)")
  elif [ -x ./${t}_test ]; then
    ./${t}_test ./$t.cubin 2>&1 | tee $out/kernels_$t.log | grep -v "^ok" | tail -20
    sums+=("kernels $t: $(tail -1 $out/kernels_$t.log)")
  else
    sums+=("kernels $t: MISSING")
  fi
done

echo; echo "== 2. gradients on cuda"
for g in ${GOLDENS:-tiny d64 tiny-dense d64-dense}; do
  gd=golden/$g
  ./mm-run grad $g-grad-f32.mmb --backend cuda --weights $gd/weights.safetensors --input-ids $gd/ids.npy \
    --labels $gd/labels.npy -o $w/$g-f32.safetensors > $w/$g-f32.log 2>&1 || cat $w/$g-f32.log
  $py compare_grads.py $w/$g-f32.safetensors $gd/grads.safetensors --tol 1e-4 --loss-tol 1e-5 \
    --label "$g f32 cuda vs torch" > $out/grads_${g}_f32.log 2>&1
  sums+=("$(tail -1 $out/grads_${g}_f32.log)")
  gb=golden/$g-bf16w
  ./mm-run grad $g-grad-bf16.mmb --backend cuda --weights $gb/weights.safetensors --input-ids $gb/ids.npy \
    --labels $gb/labels.npy -o $w/$g-bf16.safetensors > $w/$g-bf16.log 2>&1 || cat $w/$g-bf16.log
  $py compare_grads.py $w/$g-bf16.safetensors $gb/cpu-bf16-grads.safetensors --tol 2e-2 \
    --label "$g bf16 cuda vs bf16 cpu" > $out/grads_${g}_bf16_vs_cpu.log 2>&1
  sums+=("$(case $g in *dense) ;; *) echo "(report, top-2 routing) ";; esac)$(tail -1 $out/grads_${g}_bf16_vs_cpu.log)")
  $py compare_grads.py $w/$g-bf16.safetensors $gb/grads.safetensors --tol 2e-2 --loss-tol 1e-2 \
    --label "$g bf16 cuda vs torch fp32 (bf16 weights)" > $out/grads_${g}_bf16_vs_torch.log 2>&1
  sums+=("$(case $g in *dense) ;; *) echo "(report, top-2 routing) ";; esac)$(tail -1 $out/grads_${g}_bf16_vs_torch.log)")
  sums+=("   yardstick: $(cat $gb/torch-bf16.txt)")
  case $g in *dense) continue;; esac
  # AdamW: the golden's steps on cuda, losses and weights vs torch.optim.AdamW.
  rm -rf $w/$g-adamw
  ./mm-run train $g-adamw-f32.mmb --backend cuda --data $gd/tokens.bin \
    --steps $($py -c "import json; print(json.load(open('$gd/adamw.json'))['steps'])") \
    --batch $($py -c "import json; print(json.load(open('$gd/adamw.json'))['batch'])") \
    --seq $($py -c "import json; print(json.load(open('$gd/adamw.json'))['seq'])") \
    --lr $($py -c "import json; print(repr(json.load(open('$gd/adamw.json'))['lr']))") \
    --checkpoint $w/$g-adamw --weights $gd/weights.safetensors > $w/$g-adamw.log 2>&1 || cat $w/$g-adamw.log
  $py - "$w/$g-adamw.log" "$gd" "$w/$g-adamw/checkpoint.safetensors" > $out/adamw_$g.log 2>&1 <<'PY'
import json, re, sys
import numpy as np
from check_golden import read_safetensors
log, gd, ck = sys.argv[1:]
hp = json.load(open(gd + "/adamw.json"))
mine = [float(x) for x in re.findall(r"^step \d+ loss (\S+)", open(log).read(), re.M)]
le = max(abs(a - b) / abs(b) for a, b in zip(mine, hp["losses"])) if len(mine) == len(hp["losses"]) else float("inf")
final, want = read_safetensors(ck), read_safetensors(gd + "/adamw.safetensors")
we = max(float(np.linalg.norm(final[k] - want[k]) / np.linalg.norm(want[k])) for k in want)
ok = le <= 1e-5 and we <= 1e-4
print(f"{'ok  ' if ok else 'FAIL'} adamw {len(mine)} steps on cuda vs torch.optim.AdamW: losses rel {le:.2e} "
      f"(tol 1e-5), {len(want)} weights worst rel {we:.2e} (tol 1e-4)")
PY
  sums+=("$g: $(tail -1 $out/adamw_$g.log)")
done

echo; echo "== 2b. recomputation (gradients vs torch) and CAME (10 steps, losses vs the CPU backend) on cuda"
gd=golden/tiny
./mm-run grad tiny-grad-f32-recompute.mmb --backend cuda --weights $gd/weights.safetensors \
  --input-ids $gd/ids.npy --labels $gd/labels.npy -o $w/tiny-recompute.safetensors > $w/recompute.log 2>&1 \
  || cat $w/recompute.log
$py compare_grads.py $w/tiny-recompute.safetensors $gd/grads.safetensors --tol 1e-4 --loss-tol 1e-5 \
  --label "tiny f32 recompute=true cuda vs torch" > $out/grads_tiny_recompute.log 2>&1
sums+=("$(tail -1 $out/grads_tiny_recompute.log)")
rm -rf $w/came
./mm-run train tiny-came-f32.mmb --backend cuda --data $gd/tokens.bin --batch 2 --seq 24 --lr 1e-3 \
  --steps 10 --checkpoint $w/came --weights $gd/weights.safetensors > $out/came_cuda.log 2>&1
$py - $out/came_cuda.log $gd/came-cpu.log > $out/came.log 2>&1 <<'PY'
import re, sys
get = lambda f: [float(x) for x in re.findall(r"^step \d+ loss (\S+)", open(f).read(), re.M)]
gpu, cpu = get(sys.argv[1]), get(sys.argv[2])
e = max(abs(a - b) / abs(b) for a, b in zip(gpu, cpu)) if gpu and len(gpu) == len(cpu) else float("inf")
ok = e <= 1e-4 and gpu[-1] < gpu[0]
print(f"{'ok  ' if ok else 'FAIL'} came 10 steps on cuda vs the CPU backend: losses rel {e:.2e} (tol 1e-4), "
      f"loss {gpu[0]:.4f} -> {gpu[-1]:.4f}" if gpu else "FAIL came: no loss lines")
PY
sums+=("$(tail -1 $out/came.log)")

echo; echo "== 3. mm-run train on cuda: resume and NaN"
gd=golden/tiny
args="--data $gd/tokens.bin --batch 2 --seq 24 --lr 3e-3 --backend cuda"
rm -rf $w/r8 $w/r4
./mm-run train tiny-adamw-bf16.mmb $args --steps 8 --checkpoint $w/r8 --weights $gd/weights.safetensors > $w/r8.log 2>&1
./mm-run train tiny-adamw-bf16.mmb $args --steps 4 --checkpoint $w/r4 --weights $gd/weights.safetensors > $w/r4.log 2>&1
./mm-run train tiny-adamw-bf16.mmb $args --steps 8 --checkpoint $w/r4 --resume >> $w/r4.log 2>&1
grep "^step [5-8] " $w/r8.log | awk '{print $1, $2, $4}' > $w/a.txt
grep "^step [5-8] " $w/r4.log | awk '{print $1, $2, $4}' > $w/b.txt
if [ -s $w/a.txt ] && cmp -s $w/a.txt $w/b.txt; then r="bit-identical"; else r="DIFFERENT"; fi
paste $w/a.txt $w/b.txt | tee $out/resume.log
sums+=("resume on cuda (bf16, 4+4 vs 8 steps): losses of steps 5-8 $r")
$py - $gd/weights.safetensors $w/nan.safetensors <<'PY'
import sys, json, struct
d = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", d[:8])[0]; h = json.loads(d[8:8 + n])
info = h["model.layers.1.self_attn.q_proj.weight"]; at = 8 + n + info["data_offsets"][0] + 4 * 5
d = d[:at] + struct.pack("<f", float("nan")) + d[at + 4:]
open(sys.argv[2], "wb").write(d)
PY
./mm-run train tiny-adamw-f32.mmb $args --steps 1 --checkpoint $w/nan --weights $w/nan.safetensors > $out/nan.log 2>&1
sums+=("NaN on cuda: exit $? — $(tail -1 $out/nan.log)")

if [ -n "${SKIP_THROUGHPUT:-}" ]; then
  echo; echo "== summary"
  for s in "${sums[@]}"; do echo "$s"; done
  exit 0
fi
echo; echo "== 4. throughput: small, bf16, B=1 T=8192, AdamW"
$py gen_weights.py --config small/config.json --dtype bf16 -o $w/small.safetensors
$py -c "import numpy as np; np.random.default_rng(2).integers(0, 32000, 8192 * 16 + 1).astype('<u2').tofile('$w/small-tokens.bin')"
./mm-run train small-train.mmb --backend cuda --data $w/small-tokens.bin --batch 1 --seq 8192 --lr 1e-4 \
  --steps 12 --checkpoint $w/small-ckpt --save-every 1000 --weights $w/small.safetensors --profile \
  2>&1 | tee $out/ours_train_8k.log | grep -v "^checkpoint"
ms=$(grep "^step" $out/ours_train_8k.log | tail -8 | awk '{for (i = 1; i <= NF; ++i) if ($i == "tok/s") print $(i + 1)}' | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
gflop=$(grep -o '[0-9.]* GFLOP per token' $out/ours_train_8k.log | awk '{print $1}')
sums+=("ours train small 8K: median of the last 8 steps ${ms:-FAILED} tok/s ($(grep '^step' $out/ours_train_8k.log | tail -1 | grep -o 'mfu [0-9.]*%'))")
if [ "${3:-}" != "--no-hf" ]; then
  $py hf_train.py --config small/config.json --seq 8192 --steps 6 --mode bf16 --gflop-per-token ${gflop:-0} \
    2>&1 | grep -v -i warn | tee $out/hf_train_8k.log
  $py hf_train.py --config small/config.json --seq 8192 --steps 6 --mode amp --gflop-per-token ${gflop:-0} \
    2>&1 | grep -v -i warn | tee -a $out/hf_train_8k.log
  hf=$(grep -o '[0-9]* tok/s' $out/hf_train_8k.log | head -1 | awk '{print $1}')
  hfamp=$(grep -o '[0-9]* tok/s' $out/hf_train_8k.log | sed -n 2p | awk '{print $1}')
  sums+=("HF eager train small 8K: bf16 params ${hf:-FAILED} tok/s; fp32 params + bf16 autocast ${hfamp:-FAILED} tok/s")
  [ -n "${ms:-}" ] && [ -n "${hf:-}" ] && sums+=("speedup ours / HF eager (the faster, bf16 params): $($py -c "print('%.2f' % ($ms / $hf))")x (target 10x)")
  [ -n "${ms:-}" ] && [ -n "${hfamp:-}" ] && sums+=("speedup ours / HF eager amp (fp32 masters like ours): $($py -c "print('%.2f' % ($ms / $hfamp))")x")
fi

echo; echo "== summary"
for s in "${sums[@]}"; do echo "$s"; done
