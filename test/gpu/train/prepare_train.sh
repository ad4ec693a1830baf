#!/usr/bin/env bash
# Builds everything the GPU training checks need on THIS machine (no GPU: nvcc for the training-kernel
# tests, mm-import + mm-opt + NVRTC for the artifacts, torch on the CPU for the extra goldens) into DIR,
# which run_train_gpu.sh then runs on a GPU machine (that machine lacks MLIR and flatbuffers).
#   usage: test/gpu/train/prepare_train.sh BUILD_DIR DIR [TORCH_PYTHON]
# TORCH_PYTHON (torch + transformers) makes the head_dim-64 goldens (tools/make_golden_grads.py
# --preset d64, fp32 and bf16-rounded weights); without it they are skipped.
set -euo pipefail
build=$(cd "$1" && pwd)
mkdir -p "$2"
dir=$(cd "$2" && pwd)
torchpy=${3:-}
src=$(cd "$(dirname "$0")/../../.." && pwd)
bin=$build/bin
py=${PYTHON:-/usr/bin/python3}

echo "== training-kernel tests (nvcc, sm_90a)"
for t in train_small lightning_attention_grad softmax_attention_grad moe_grad; do
  SECONDS=0
  bash "$src/test/gpu/train/build_kernel_test.sh" $t "$dir" "$build/lib/libmm_runtime.a" >/dev/null
  echo "   $t: ${SECONDS} s"
done

echo "== forward kernel tests (nvcc, sm_90a)"
SECONDS=0
/usr/local/cuda/bin/nvcc -std=c++17 -O2 -lineinfo -gencode arch=compute_90a,code=sm_90a -I"$src" \
  "$src/test/gpu/KernelTests.cu" -o "$dir/mm-gpu-kernel-tests" "$build/lib/libmm_runtime.a" -ldl
echo "   ${SECONDS} s"

echo "== goldens"
mkdir -p "$dir/golden"
cp -r "$src/test/golden/grads-tiny" "$dir/golden/tiny"
"$torchpy" "$src/tools/make_golden_grads.py" -o "$dir/golden/tiny-bf16w" --bf16-weights >/dev/null
"$torchpy" "$src/tools/make_golden_grads.py" -o "$dir/golden/d64" --preset d64 >/dev/null
"$torchpy" "$src/tools/make_golden_grads.py" -o "$dir/golden/d64-bf16w" --preset d64 --bf16-weights >/dev/null
for g in tiny-dense d64-dense; do
  "$torchpy" "$src/tools/make_golden_grads.py" -o "$dir/golden/$g" --preset $g >/dev/null
  "$torchpy" "$src/tools/make_golden_grads.py" -o "$dir/golden/$g-bf16w" --preset $g --bf16-weights >/dev/null
done
for g in tiny-bf16w d64-bf16w tiny-dense-bf16w d64-dense-bf16w; do
  "$torchpy" "$src/test/golden/torch_bf16_grads.py" "$dir/golden/$g" | tee "$dir/golden/$g/torch-bf16.txt"
done
# Only the fp32 goldens of tiny and d64 drive AdamW steps: drop what nothing reads (carry size).
for g in tiny-bf16w d64-bf16w tiny-dense tiny-dense-bf16w d64-dense d64-dense-bf16w; do
  rm -f "$dir/golden/$g"/adamw.* "$dir/golden/$g"/tokens.bin
done

echo "== artifacts (sm_90a) and the CPU backend's bf16 gradients (the GPU's same-rounding reference)"
for g in tiny d64 tiny-dense d64-dense; do
  "$bin/mm-import" "$dir/golden/$g" -o "$dir/$g.mlir"
  seq=$(case $g in tiny*) echo 64;; *) echo 256;; esac)
  for dt in f32 bf16; do
    "$bin/mm-opt" "$dir/$g.mlir" -o /dev/null --mm-compile="mode=train optimizer=none dtype=$dt \
max-batch=2 max-seq=$seq target=sm_90a artifact=$dir/$g-grad-$dt.mmb" >/dev/null
  done
  "$bin/mm-run" grad "$dir/$g-grad-bf16.mmb" --weights "$dir/golden/$g-bf16w/weights.safetensors" \
    --input-ids "$dir/golden/$g-bf16w/ids.npy" --labels "$dir/golden/$g-bf16w/labels.npy" \
    -o "$dir/golden/$g-bf16w/cpu-bf16-grads.safetensors" >/dev/null
  case $g in *dense) continue;; esac
  hp=$dir/golden/$g/adamw.json
  opts=$($py -c "import json; h = json.load(open('$hp')); print(f\"beta1={h['beta1']} beta2={h['beta2']} \
eps={h['eps']} weight-decay={h['weight_decay']} max-norm={h['max_norm']} max-batch={h['batch']} max-seq={h['seq']}\")")
  for dt in f32 bf16; do
    "$bin/mm-opt" "$dir/$g.mlir" -o /dev/null --mm-compile="mode=train optimizer=adamw dtype=$dt $opts \
target=sm_90a artifact=$dir/$g-adamw-$dt.mmb" >/dev/null
  done
done

echo "== recomputation and CAME on the tiny golden (f32): gradients, and CAME losses on the CPU backend"
"$bin/mm-import" "$dir/golden/tiny" -o "$dir/tiny.mlir"
"$bin/mm-opt" "$dir/tiny.mlir" -o /dev/null --mm-compile="mode=train optimizer=none recompute=true \
max-batch=2 max-seq=64 target=sm_90a artifact=$dir/tiny-grad-f32-recompute.mmb" >/dev/null
"$bin/mm-opt" "$dir/tiny.mlir" -o /dev/null --mm-compile="mode=train optimizer=came max-norm=1.0 \
max-batch=2 max-seq=24 target=sm_90a artifact=$dir/tiny-came-f32.mmb" >/dev/null
rm -rf "$dir/came-cpu"
# lr 1e-3: at 3e-3 this tiny model's CAME run is chaotic (its loss jumps between 4.3 and 5.5 from step
# 5 on, and two GPU runs, whose reductions use atomics, part there by 1e-3), so only the stable
# setting can compare backends.
"$bin/mm-run" train "$dir/tiny-came-f32.mmb" --data "$dir/golden/tiny/tokens.bin" --batch 2 --seq 24 \
  --lr 1e-3 --steps 10 --checkpoint "$dir/came-cpu" --weights "$dir/golden/tiny/weights.safetensors" \
  > "$dir/golden/tiny/came-cpu.log"
rm -rf "$dir/came-cpu"

echo "== small preset: bf16 training artifact, B=1 T=8192"
"$bin/mm-import" "$src/models/small" -o "$dir/small.mlir"
"$bin/mm-opt" "$dir/small.mlir" -o /dev/null --mm-compile="mode=train optimizer=adamw dtype=bf16 \
max-batch=1 max-seq=8192 chunk-rows=4096 target=sm_90a artifact=$dir/small-train.mmb" 2>&1 | tail -1
mkdir -p "$dir/small"
cp "$src/models/small/config.json" "$dir/small/"
cp "$bin/mm-run" "$src/models/tiny/gen_weights.py" "$src/tools/bench/hf_train.py" \
  "$src/test/golden/compare_grads.py" "$src/test/golden/check_golden.py" \
  "$src/test/gpu/train/run_train_gpu.sh" "$dir/"
rm -f "$dir"/*.mlir
du -sh "$dir"
