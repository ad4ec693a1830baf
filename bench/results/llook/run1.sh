#!/usr/bin/env bash
# llook call 1: fused decoupled look-back, checks + timings vs the three launches.
# (lbF = lbH built with -DMM_LIGHTNING_FUSED_FORWARD; phase A then still had 3 q|k|v stages)
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
d=.carry-llook; o=${OUT:-/tmp/out}; mkdir -p $o
cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
nvidia-smi --query-gpu=name --format=csv,noheader; date -u
echo "== fused 1024 checks"; timeout 40 $d/lbH --fused 1024 --max-t 65536 --t 65536 --no-sweep > $o/chk1024.log 2>&1; echo rc=$?; grep -E "^(ok|FAIL)|fused|passed|FAILED" $o/chk1024.log | cut -c1-150
echo "== fused 256 checks"; timeout 30 $d/lbH --fused 256 --max-t 65536 --t 65536 --no-sweep > $o/chk256.log 2>&1; echo rc=$?; grep -E "FAIL|passed|FAILED|sequential|^ +65536" $o/chk256.log | cut -c1-150
echo "== fused timings (backward phase A)"; timeout 40 $d/lbH --fused 2048 --no-check --t 65536,262144,1048576 > $o/fusedB.log 2>&1; echo rc=$?; grep -vE "^device" $o/fusedB.log
echo "== fused timings (forward phase A)"; timeout 25 $d/lbF --fused 2048 --no-check --t 262144,1048576 > $o/fusedF.log 2>&1; echo rc=$?; grep -E "^ +[0-9]|seg " $o/fusedF.log
echo "== three launches (this branch)"; timeout 20 $d/lbH --no-check --no-sweep --t 65536,262144,1048576 > $o/three.log 2>&1; echo rc=$?; grep -E "^ +[0-9]|split|copy" $o/three.log
echo "== lb0 (main)"; timeout 20 $d/lb0 --no-check --no-sweep --t 65536,262144,1048576 > $o/lb0.log 2>&1; echo rc=$?; grep -E "^ +[0-9]|split|copy" $o/lb0.log
echo "== memcheck fused 256 small"; timeout 60 $cs --tool memcheck $d/lbH --fused 256 --max-t 4096 --t 4096 --no-sweep --seq-max-t 0 > $o/memcheck.log 2>&1; echo rc=$?; grep -E "ERROR SUMMARY|FAIL|passed" $o/memcheck.log | head -5
date -u
