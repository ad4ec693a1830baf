#!/usr/bin/env python3
"""Compares an `mm-run grad` output with a golden grads.safetensors (tools/make_golden_grads.py).

    compare_grads.py MINE.safetensors GOLDEN.safetensors --tol 2e-2 [--loss-tol 1e-2] [--label TEXT]

Per gradient tensor: relative L2 error ‖mine − golden‖ / ‖golden‖; also the loss and all gradients
concatenated. Every tensor must be within --tol (and the loss within --loss-tol); prints one line per
tensor and a summary, exits 1 on any failure. Needs numpy only.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_golden import read_safetensors  # noqa: E402


def rel(a, b):
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    if a.shape != b.shape or not np.all(np.isfinite(a)):
        return float("inf")
    d = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / d) if d > 0 else float(np.linalg.norm(a - b))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mine")
    ap.add_argument("golden")
    ap.add_argument("--tol", type=float, required=True)
    ap.add_argument("--loss-tol", type=float, default=None)
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    mine, golden = read_safetensors(args.mine), read_safetensors(args.golden)
    if set(mine) != set(golden):
        sys.exit(f"FAIL {args.label}: tensors differ: only mm {sorted(set(mine) - set(golden))}, "
                 f"only golden {sorted(set(golden) - set(mine))}")
    failures = 0
    names = sorted(k for k in golden if k != "loss")
    worst = (0.0, "")
    for name in names:
        e = rel(mine[name], golden[name])
        worst = max(worst, (e, name))
        ok = e <= args.tol
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {args.label} {name}: rel {e:.2e}")
    loss_tol = args.loss_tol if args.loss_tol is not None else args.tol
    e = rel(mine["loss"], golden["loss"])
    failures += e > loss_tol
    print(f"{'ok  ' if e <= loss_tol else 'FAIL'} {args.label} loss mm {float(np.ravel(mine['loss'])[0]):.7f} "
          f"golden {float(np.ravel(golden['loss'])[0]):.7f}: rel {e:.2e} (tol {loss_tol})")
    flat = lambda t: np.concatenate([np.ravel(t[k]) for k in names])
    print(f"{'ok  ' if not failures else 'FAIL'} {args.label}: {len(names)} gradients, all together rel "
          f"{rel(flat(mine), flat(golden)):.2e}, worst tensor {worst[0]:.2e} {worst[1]} (tol {args.tol})")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
