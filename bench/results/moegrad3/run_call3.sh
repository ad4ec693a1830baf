#!/bin/bash
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:$LD_LIBRARY_PATH
D=.carry-moegrad3
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
echo "== F --small"; timeout 30 $D/F/moe_grad_test $D/F/moe_grad.cubin --small 2>&1 | grep -v "^ok"
for v in base A B C D E F G B F base; do echo "== bench $v"; timeout 20 $D/$v/moe_grad_test $D/$v/moe_grad.cubin --bench > $OUT/bench_$v.txt 2>&1; grep -v "^device" $OUT/bench_$v.txt | sed -n '11,30p' | grep -v "route\|dispatch\|drouter_sum"; done
CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
echo "sanitizer: $CS"
for v in A B C D E F G; do (timeout 75 $D/$v/moe_grad_test $D/$v/moe_grad.cubin > $OUT/test_$v.txt 2>&1; echo "rc=$?" >> $OUT/test_$v.txt) & done
for v in B F G; do (timeout 80 $CS --tool memcheck $D/$v/moe_grad_test $D/$v/moe_grad.cubin --small > $OUT/memcheck_$v.txt 2>&1; echo "rc=$?" >> $OUT/memcheck_$v.txt) & done
wait
for v in A B C D E F G; do echo "== full test $v"; grep -v "^ok" $OUT/test_$v.txt | tail -4; done
for v in B F G; do echo "== memcheck $v"; tail -3 $OUT/memcheck_$v.txt; done
