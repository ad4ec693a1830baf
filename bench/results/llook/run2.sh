#!/usr/bin/env bash
# llook call 2 (final): fused single launch with decoupled look-back.
# Tests first (lbH checks, KernelTests, e2e through the executor), then timings
# (lb0 = main, lbH three launches, lbH fused), then compute-sanitizer.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
d=.carry-llook; o=${OUT:-/tmp/out}; mkdir -p $o
cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
echo "== lbH fused 1024 checks"; timeout 40 $d/lbH --fused 1024 --max-t 65536 --t 65536 --no-sweep > $o/chk1024.log 2>&1; echo rc=$?; grep -E "^(ok|FAIL)|passed|FAILED" $o/chk1024.log | cut -c1-140
echo "== lbH fused 256 checks"; timeout 30 $d/lbH --fused 256 --max-t 65536 --t 65536 --no-sweep > $o/chk256.log 2>&1; echo rc=$?; grep -E "FAIL|passed|FAILED|sequential" $o/chk256.log | cut -c1-140
echo "== lbH D=64 checks (three launches)"; timeout 30 $d/lbH --d 64 --max-t 65536 --t 65536 --no-sweep > $o/chk64.log 2>&1; echo rc=$?; grep -E "FAIL|passed|FAILED|^ +65536" $o/chk64.log | cut -c1-140
echo "== KernelTests full"; timeout 90 $d/mm-gpu-kernel-tests > $o/kt.log 2>&1; echo rc=$?; grep -c PASS $o/kt.log; grep -E "FAIL|fused|summary|cases" $o/kt.log | cut -c1-150 | tail -14
echo "== e2e d128 bf16 via executor"; python3 $d/gen_weights.py --config $d/d128/config.json --dtype bf16 -o /tmp/d128.safetensors > /dev/null 2>&1; echo gen rc=$?
for f in unset 64 0; do
  if [ $f = unset ]; then unset MM_LIGHTNING_FUSED; else export MM_LIGHTNING_FUSED=$f; fi
  echo "-- MM_LIGHTNING_FUSED=$f"; timeout 60 python3 $d/e2e/run_e2e.py --mm-run $d/mm-run --artifact $d/d128/d128_bf16.mmb --config $d/d128/config.json --weights /tmp/d128.safetensors --extra "--backend cuda" --bf16 --tmp /tmp/d128-e2e-$f > $o/e2e_$f.log 2>&1; echo rc=$?; tail -4 $o/e2e_$f.log | cut -c1-160
done; unset MM_LIGHTNING_FUSED
echo "== timings: lb0 (main, before)"; timeout 25 $d/lb0 --no-check --no-sweep --t 4096,16384,65536,262144,1048576 > $o/lb0.log 2>&1; echo rc=$?; grep -E "^ +[0-9]|copy" $o/lb0.log
echo "== timings: lbH runtime choice (--fused -1, after)"; timeout 25 $d/lbH --fused -1 --no-check --no-sweep --t 4096,16384,65536,262144,1048576 > $o/auto.log 2>&1; echo rc=$?; grep -E "^ +[0-9]|copy|FAIL" $o/auto.log
echo "== timings: lbH three launches"; timeout 25 $d/lbH --no-check --no-sweep --t 65536,262144,1048576 > $o/three.log 2>&1; echo rc=$?; grep -E "^ +[0-9]|split" $o/three.log
echo "== timings: lbH fused 8192 + sweep"; timeout 40 $d/lbH --fused 8192 --no-check --t 65536,262144,1048576 > $o/fsweep.log 2>&1; echo rc=$?; grep -E "^ +[0-9]|seg |FAIL" $o/fsweep.log
echo "== timings: lbN = lbH without phase A (wrong results; the cost of phase A)"; timeout 20 $d/lbN --fused 8192 --no-check --no-sweep --t 65536,262144,1048576 > $o/skipA.log 2>&1; echo rc=$?; grep -E "^ +[0-9]" $o/skipA.log
echo "== timings again: lb0 / auto (order effects)"; timeout 20 $d/lb0 --no-check --no-sweep --t 65536,262144,1048576 > $o/lb0b.log 2>&1; grep -E "^ +[0-9]" $o/lb0b.log; timeout 20 $d/lbH --fused -1 --no-check --no-sweep --t 65536,262144,1048576 > $o/autob.log 2>&1; grep -E "^ +[0-9]" $o/autob.log
echo "== KernelTests --bench-sweep (lightning lines)"; timeout 40 $d/mm-gpu-kernel-tests --bench-sweep > $o/sweep.log 2>&1; echo rc=$?; grep lightning $o/sweep.log
echo "== memcheck KernelTests --quick"; timeout 45 $cs --tool memcheck $d/mm-gpu-kernel-tests --quick > $o/memcheck_kt.log 2>&1; echo rc=$?; grep -E "ERROR SUMMARY|FAIL" $o/memcheck_kt.log | head -5; grep -c PASS $o/memcheck_kt.log
echo "== memcheck lbH fused 128 small"; timeout 30 $cs --tool memcheck $d/lbH --fused 128 --max-t 2048 --t 4096 --no-sweep --seq-max-t 0 > $o/memcheck_lb.log 2>&1; echo rc=$?; grep -E "ERROR SUMMARY|FAIL|passed" $o/memcheck_lb.log | head -3
echo "== racecheck lbH fused 128 small"; timeout 25 $cs --tool racecheck $d/lbH --fused 128 --max-t 2048 --t 4096 --no-sweep --seq-max-t 0 > $o/racecheck_lb.log 2>&1; echo rc=$?; grep -E "ERROR SUMMARY|RACE|hazard|FAIL|passed" $o/racecheck_lb.log | head -5
date -u
