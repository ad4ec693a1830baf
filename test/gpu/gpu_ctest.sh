#!/usr/bin/env bash
# ctest entry of the GPU tests: skips (exit 77, shown as "Skipped" by ctest) where there is no GPU;
# otherwise builds the kernel tests and artifacts (prepare.sh) and runs run_gpu_tests.sh.
# usage: gpu_ctest.sh BUILD_DIR [PYTHON]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! nvidia-smi -L >/dev/null 2>&1; then
  echo "SKIPPED: no GPU here (nvidia-smi finds none); the GPU kernel and model tests need one"
  exit 77
fi
"$here/prepare.sh" "$1" "$1/gpu-tests" "${2:-/usr/bin/python3}"
PYTHON=${2:-/usr/bin/python3} "$here/run_gpu_tests.sh" "$1/gpu-tests" "$1/gpu-tests/results"
