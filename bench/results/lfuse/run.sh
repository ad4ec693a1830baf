#!/usr/bin/env bash
# lfuse device run 2: KernelTests (full) + memcheck --quick for the two candidate defaults (kt27, kt11 =
# the wgmma output form VAR), lbH checks + timings per output form, lb0 (main) before, D = 64, then the
# experimental fused single launch (lbH --fused SEG).
set -u
cd "$(dirname "$0")"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
O=${OUT:-/tmp/out}; mkdir -p $O
date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
SECONDS=0
for v in 27 11; do
  echo "== KernelTests VAR=$v (full) ${SECONDS}s"
  timeout 40 ./kt$v > $O/kt$v.log 2>&1; echo "rc=$?"
  grep "kernel tests:" $O/kt$v.log; grep -v PASS $O/kt$v.log | grep -v "^device" | head -5
  grep -c "lightning.*fast.*PASS" $O/kt$v.log
  san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  timeout 30 $san --tool memcheck ./kt$v --quick > $O/memcheck$v.log 2>&1; echo "memcheck rc=$?"
  grep "ERROR SUMMARY" $O/memcheck$v.log | tail -1
done
for v in 27 11 3 31 7 2 1 26; do
  echo "== lbH --var $v: checks + timings ${SECONDS}s"
  timeout 25 ./lbH --d 128 --var $v --t 65536,262144,1048576 --no-sweep --seq-max-t 0 > $O/lb_var$v.log 2>&1; echo "rc=$?"
  grep -c "^ok" $O/lb_var$v.log; grep "FAIL\|max rel\|^ *[0-9]\|split\|checks" $O/lb_var$v.log
done
echo "== lb0 --d 128 (before) ${SECONDS}s"
timeout 20 ./lb0 --d 128 --no-check --t 65536,262144,1048576 --seq-max-t 0 2>&1 | tee $O/lb_before_128.log | grep -v "seg  \|^device"
echo "== D=64 after / before ${SECONDS}s"
timeout 25 ./lbH --d 64 --t 8192,65536 --max-t 65536 --seq-max-t 0 --no-sweep > $O/lb_after_64.log 2>&1; echo "rc=$?"
grep -c "^ok" $O/lb_after_64.log; grep "FAIL\|^ *[0-9]\|split\|checks" $O/lb_after_64.log
timeout 15 ./lb0 --d 64 --no-check --t 8192,65536 --max-t 65536 --seq-max-t 0 2>&1 | tee $O/lb_before_64.log | grep "^ *[0-9]\|split"
for v in 27 11; do
  echo "== fused single launch, VAR=$v, seg 512 (+ sweep) ${SECONDS}s"
  timeout 30 ./lbH --d 128 --var $v --fused 512 --t 65536,262144,1048576 --seq-max-t 0 > $O/lb_fused$v.log 2>&1; echo "rc=$?"
  grep -c "^ok" $O/lb_fused$v.log; grep "FAIL\|^ *[0-9]\|seg  \|checks" $O/lb_fused$v.log
done
echo "total ${SECONDS}s"
