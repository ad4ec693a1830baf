#!/usr/bin/env bash
# light2 final device run: KernelTests (full), memcheck --quick, lb (this branch) vs lb0 (before), bench sweep.
set -u
cd "$(dirname "$0")"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
O=${OUT:-/tmp/out}; mkdir -p $O
date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
SECONDS=0
echo "== 1. KernelTests (full)"
timeout 100 ./mm-gpu-kernel-tests > $O/kt.log 2>&1; echo "rc=$? ${SECONDS}s"
grep -c PASS $O/kt.log; grep -v PASS $O/kt.log | head; grep -i "lightning.*fast" $O/kt.log
echo "== 2. memcheck --quick ${SECONDS}s"
san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
timeout 90 $san --tool memcheck ./mm-gpu-kernel-tests --quick > $O/memcheck.log 2>&1; echo "rc=$?"
grep -i "lightning" $O/memcheck.log | head; grep "ERROR SUMMARY" $O/memcheck.log | tail -1
echo "== 3. lb --d 128 (after: checks + timings) ${SECONDS}s"
timeout 60 ./lbH --d 128 --seq-max-t 0 2>&1 | tee $O/lb_after_128.log | grep -v "seg  "
echo "== 4. lb0 --d 128 (before) ${SECONDS}s"
timeout 60 ./lb0 --d 128 --no-check --seq-max-t 0 2>&1 | tee $O/lb_before_128.log | grep -v "seg  \|^device"
echo "== 5. lb --d 64 after / before ${SECONDS}s"
timeout 30 ./lbH --d 64 --t 8192,65536 --max-t 65536 --seq-max-t 0 2>&1 | tee $O/lb_after_64.log | grep -v "seg  "
timeout 30 ./lb0 --d 64 --no-check --t 8192,65536 --max-t 65536 --seq-max-t 0 2>&1 | tee $O/lb_before_64.log | grep -v "seg  \|^device"
echo "== 6. KernelTests --bench-sweep (lightning rows) ${SECONDS}s"
timeout 60 ./mm-gpu-kernel-tests --bench-sweep > $O/sweep.log 2>&1; echo "rc=$?"; grep lightning $O/sweep.log
echo "total ${SECONDS}s"
