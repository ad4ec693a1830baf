#!/usr/bin/env bash
# lightning64 device run: KernelTests (full), D=64 bench vs sequential, small prefill before/after, memcheck --quick.
set -u
cd "$(dirname "$0")"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
O=${OUT:-/tmp/out}; mkdir -p $O
date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
SECONDS=0
echo "== 1. KernelTests (full)"
timeout 90 ./mm-gpu-kernel-tests > $O/kt.log 2>&1; echo "rc=$? ${SECONDS}s"
grep -c PASS $O/kt.log; grep -v PASS $O/kt.log | head -20; grep "lightning" $O/kt.log
echo "== 2. lb --d 64 (checks + timings vs sequential) ${SECONDS}s"
timeout 60 ./lb --d 64 --t 8192,65536 --max-t 65536 --seq-max-t 65536 2>&1 | tee $O/lb64.log; echo "rc=$?"
echo "== 3. lb --d 128 regression timing ${SECONDS}s"
timeout 20 ./lb --d 128 --no-check --t 16384,65536 --max-t 65536 --seq-max-t 0 2>&1 | tee $O/lb128.log
echo "== 4. small prefill 8K before/after ${SECONDS}s"
w=/tmp/l64; mkdir -p $w
timeout 60 python3 gen_weights.py --config small/config.json --dtype bf16 -o $w/small.safetensors && \
python3 -c "
import numpy as np
r = np.random.default_rng(1)
np.save('$w/ids8k.npy', r.integers(0, 32000, (1, 8192)).astype(np.int32))"
echo "weights ${SECONDS}s"
for v in before after; do
  echo "-- $v"
  timeout 40 ./mm-run-$v small_$v.mmb --weights $w/small.safetensors --input-ids $w/ids8k.npy --backend cuda \
    --repeat 10 --profile --dump-logits $w/$v.npy > $O/prefill_$v.log 2>&1; echo "rc=$?"
  grep -i "median" $O/prefill_$v.log | head -3; grep -A14 "kernel .*steps" $O/prefill_$v.log
done
python3 -c "
import numpy as np
a=np.load('$w/before.npy').astype(np.float64); b=np.load('$w/after.npy').astype(np.float64)
print('logits before vs after: rel diff %.3e, argmax equal %s' % (np.linalg.norm(a-b)/np.linalg.norm(a), bool((a.argmax(-1)==b.argmax(-1)).all())))"
echo "== 5. memcheck --quick ${SECONDS}s"
san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
timeout 45 $san --tool memcheck ./mm-gpu-kernel-tests --quick > $O/memcheck.log 2>&1; echo "rc=$?"
grep "lightning" $O/memcheck.log; grep "ERROR SUMMARY" $O/memcheck.log | tail -1
echo "total ${SECONDS}s"
