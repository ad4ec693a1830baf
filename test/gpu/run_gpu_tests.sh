#!/usr/bin/env bash
# The GPU test run: kernel tests against the CPU reference, the tiny model on the cuda backend
# against the float64 NumPy reference (and the same sm_90a artifact on the cpu backend), the
# error path, compute-sanitizer memcheck, and a timing line. Prints a summary table last.
# DIR is what test/gpu/prepare.sh made. Exits 77 (skip) where there is no GPU.
# usage: run_gpu_tests.sh DIR [OUT_DIR]
set -uo pipefail
dir=$(cd "$1" && pwd)
out=${2:-$dir/results}
mkdir -p "$out"
if ! nvidia-smi -L >/dev/null 2>&1; then
  echo "SKIPPED: no GPU here (nvidia-smi finds none); the GPU tests need one"
  exit 77
fi
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
py=${PYTHON:-python3}
cd "$dir"

echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"
echo "command: $0 $*"
declare -a names results
for m in tiny medium; do  # deterministic (seed 0), so they match what prepare.sh's machine would write
  [ -f $m.safetensors ] || $py gen_weights.py --config $m/config.json -o $m.safetensors >/dev/null
done
record() { names+=("$1"); results+=("$2"); }

echo; echo "== 1. kernel tests (f32 + bf16, every kernel vs the CPU reference)"
./mm-gpu-kernel-tests 2>&1 | tee "$out/kernel_tests.log"
rc=${PIPESTATUS[0]}
record "kernel tests: $(tail -1 "$out/kernel_tests.log")" $([ $rc = 0 ] && echo PASS || echo FAIL)

echo; echo "== 2. tiny model, sm_90a artifact, --backend cuda vs float64 NumPy reference (rel tol 1e-4)"
$py e2e/run_e2e.py --mm-run ./mm-run --artifact tiny_sm_90a.mmb --config tiny/config.json \
  --weights tiny.safetensors --extra "--backend cuda" --rel-tol 1e-4 --tmp "$out/e2e_cuda" \
  2>&1 | tee "$out/e2e_cuda.log"
rc=${PIPESTATUS[0]}
record "tiny e2e cuda: $(tail -1 "$out/e2e_cuda.log" | cut -d' ' -f1) cases" $([ $rc = 0 ] && echo PASS || echo FAIL)

echo; echo "== 3. the same sm_90a artifact on --backend cpu (rel tol 1e-5)"
$py e2e/run_e2e.py --mm-run ./mm-run --artifact tiny_sm_90a.mmb --config tiny/config.json \
  --weights tiny.safetensors --extra "--backend cpu" --tmp "$out/e2e_cpu" 2>&1 | tee "$out/e2e_cpu.log"
rc=${PIPESTATUS[0]}
record "tiny e2e cpu (sm_90a artifact): $(tail -1 "$out/e2e_cpu.log" | cut -d' ' -f1) cases" $([ $rc = 0 ] && echo PASS || echo FAIL)

echo; echo "== 3b. medium model, sm_90a artifact, --backend cuda vs float64 NumPy reference (T = 1, 7, 129, 264)"
$py e2e/run_e2e.py --mm-run ./mm-run --artifact medium_sm_90a.mmb --config medium/config.json \
  --weights medium.safetensors --extra "--backend cuda" --rel-tol 1e-4 --tmp "$out/e2e_medium" \
  2>&1 | tee "$out/e2e_medium.log"
rc=${PIPESTATUS[0]}
record "medium e2e cuda: $(tail -1 "$out/e2e_medium.log" | cut -d' ' -f1) cases" $([ $rc = 0 ] && echo PASS || echo FAIL)

echo; echo "== 3c. transformers goldens (test/golden) on --backend cuda: max rel err <= 1e-4, argmax, greedy continuations"
$py golden/run_parity.py --bin . --golden golden --tmp golden-work --backend cuda --stage run \
  2>&1 | tee "$out/golden_cuda.log"
rc=${PIPESTATUS[0]}
record "transformers goldens on cuda: $(tail -1 "$out/golden_cuda.log")" $([ $rc = 0 ] && echo PASS || echo FAIL)

echo; echo "== 4. cuda vs cpu logits, B=2 T=64 (max_seq)"
$py -c "import numpy as np; np.save('$out/ids64.npy', np.random.default_rng(7).integers(0, 128, (2, 64)).astype(np.int32))"
./mm-run tiny_sm_90a.mmb --weights tiny.safetensors --input-ids "$out/ids64.npy" --backend cuda --dump-logits "$out/l_cuda.npy" \
  && ./mm-run tiny_sm_90a.mmb --weights tiny.safetensors --input-ids "$out/ids64.npy" --backend cpu --dump-logits "$out/l_cpu.npy"
rel=$($py -c "import numpy as np; a=np.load('$out/l_cuda.npy').astype(np.float64); b=np.load('$out/l_cpu.npy').astype(np.float64); print('%.3e' % (np.linalg.norm(a-b)/np.linalg.norm(b)) if np.isfinite(a).all() else 'nan')")
echo "rel err cuda vs cpu: $rel"
record "cuda vs cpu logits B=2 T=64: rel err $rel" $($py -c "import sys; print('PASS' if '$rel' != 'nan' and float('$rel') <= 1e-4 else 'FAIL')")

echo; echo "== 5. a bad token id on cuda is a one-line error"
$py -c "import numpy as np; np.save('$out/bad.npy', np.array([[1, 2, 500, 3]], dtype=np.int32))"
msg=$(./mm-run tiny_sm_90a.mmb --weights tiny.safetensors --input-ids "$out/bad.npy" --backend cuda 2>&1 >/dev/null); rc=$?
echo "exit $rc: $msg"
record "bad id: $msg" $([ $rc = 1 ] && [ "$(echo "$msg" | wc -l)" = 1 ] && echo "$msg" | grep -q "token id 500 at \[0, 2\]" && echo PASS || echo FAIL)

echo; echo "== 6. compute-sanitizer memcheck: kernel tests (--quick) and mm-run --backend cuda"
"$sanitizer" --tool memcheck --error-exitcode 9 ./mm-gpu-kernel-tests --quick > "$out/memcheck_kernels.log" 2>&1
rc=$?
tail -3 "$out/memcheck_kernels.log"
record "memcheck kernel tests --quick: $(grep -o 'ERROR SUMMARY: [0-9]* errors' "$out/memcheck_kernels.log" | tail -1)" $([ $rc = 0 ] && echo PASS || echo FAIL)
"$sanitizer" --tool memcheck --error-exitcode 9 ./mm-run tiny_sm_90a.mmb --weights tiny.safetensors \
  --input-ids "$out/ids64.npy" --backend cuda --generate 0 > "$out/memcheck_mmrun.log" 2>&1
rc=$?
tail -3 "$out/memcheck_mmrun.log"
record "memcheck mm-run cuda: $(grep -o 'ERROR SUMMARY: [0-9]* errors' "$out/memcheck_mmrun.log" | tail -1)" $([ $rc = 0 ] && echo PASS || echo FAIL)

echo; echo "== 7. timing: whole forward pass at max shape (median of 20 repeats), then kernels at model sizes"
$py -c "import numpy as np; np.save('$out/ids300.npy', np.random.default_rng(8).integers(0, 1000, (2, 300)).astype(np.int32))"
for b in cpu cuda; do
  n=$([ $b = cpu ] && echo 3 || echo 20)
  echo "$b tiny B=2 T=64: $(./mm-run tiny_sm_90a.mmb --weights tiny.safetensors --input-ids "$out/ids64.npy" --backend $b --repeat $n 2>&1 | grep repeated)"
  echo "$b medium B=2 T=300: $(./mm-run medium_sm_90a.mmb --weights medium.safetensors --input-ids "$out/ids300.npy" --backend $b --repeat $n 2>&1 | grep repeated)"
done 2>&1 | tee "$out/timing.log"
./mm-gpu-kernel-tests --bench 2>&1 | tee "$out/bench.log"

echo; echo "== summary"
fail=0
for i in "${!names[@]}"; do
  printf '%-5s %s\n' "${results[$i]}" "${names[$i]}"
  [ "${results[$i]}" = PASS ] || fail=1
done
exit $fail
