#!/usr/bin/env bash
# Device side of the issue-5 benchmark: ours and the peers in one run on one GPU, then the report.
# usage: run_all.sh DIR OUT   (DIR made by tools/bench/prepare.sh; the fla sources on PYTHONPATH)
set -uo pipefail
dir=$(cd "$1" && pwd)
out=$2
mkdir -p "$out"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/device.txt"
echo "== ours: kernel sweep"
"$dir/mm-gpu-kernel-tests" --bench-sweep | tee "$out/ours.jsonl"
echo "== peers"
(cd "$dir" && python3 peers.py --out "$out" --small-config models/small/config.json) 2>&1 | tail -30
if [ -x "$dir/prefill/run.sh" ]; then
  echo "== whole-model prefill"
  "$dir/prefill/run.sh" "$dir/prefill" "$out" 2>&1 | tail -30
fi
python3 "$dir/report.py" --peers "$out/peers.json" --ours "$out/ours.jsonl" \
  --prefill "$out/prefill.json" --out "$out"
