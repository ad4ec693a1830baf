#!/usr/bin/env bash
# lfuse, for a re-run of the final default (VAR 26) — not run in this session (its two calls used
# run.sh): KernelTests (full) + memcheck --quick with mm-gpu-kernel-tests (default 26), lbH checks +
# timings (default form) vs lb0 (main 6c17b3c), D=128 T=64K/256K/1M and D=64 T=8K/64K.
set -u
cd "$(dirname "$0")"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
O=${OUT:-/tmp/out}; mkdir -p $O
date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
SECONDS=0
timeout 60 ./mm-gpu-kernel-tests > $O/kt.log 2>&1; echo "kt rc=$?"; grep "kernel tests:" $O/kt.log | tail -1
grep -v PASS $O/kt.log | grep -v "^device\|kernel tests" | head
san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
timeout 40 $san --tool memcheck ./mm-gpu-kernel-tests --quick > $O/memcheck.log 2>&1; echo "memcheck rc=$?"
grep "ERROR SUMMARY" $O/memcheck.log | tail -1
timeout 40 ./lbH --d 128 --t 65536,262144,1048576 --seq-max-t 0 --no-sweep 2>&1 | tee $O/lb_after_128.log | grep -v "^ok"
timeout 20 ./lb0 --d 128 --no-check --t 65536,262144,1048576 --seq-max-t 0 2>&1 | tee $O/lb_before_128.log | grep -v "seg  \|^device"
timeout 30 ./lbH --d 64 --t 8192,65536 --max-t 65536 --seq-max-t 0 --no-sweep 2>&1 | tee $O/lb_after_64.log | grep -v "^ok"
timeout 15 ./lb0 --d 64 --no-check --t 8192,65536 --max-t 65536 --seq-max-t 0 2>&1 | tee $O/lb_before_64.log | grep -v "seg  \|^device"
echo "total ${SECONDS}s"
