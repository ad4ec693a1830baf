#!/usr/bin/env python3
"""Checks mm's training against the PyTorch goldens of tools/make_golden_grads.py (numpy only, no torch).

    check_golden.py --bin build/bin --golden test/golden/grads-tiny --work DIR

1. Gradients: compiles the model with `--mm-compile=mode=train optimizer=none` (with and without
   activation recomputation), runs `mm-run grad` once and compares the loss and the gradient of every
   weight: ||mm - torch|| / ||torch|| <= 1e-4 each.
2. AdamW: compiles with `optimizer=adamw` and the golden hyper-parameters, runs `mm-run train` for the
   golden steps and compares each step's loss (rel 1e-5) and the final weights from the checkpoint
   (rel 1e-4 per tensor) with torch.optim.AdamW + clip_grad_norm_.
Prints one line per tensor and exits non-zero on any failure.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys

import numpy as np

GRAD_TOL, WEIGHT_TOL, LOSS_TOL = 1e-4, 1e-4, 1e-5


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(data[base + lo:base + hi], dtype="<f4").reshape(info["shape"])
    return out


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r.stdout


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--golden", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    tool = lambda name: os.path.join(args.bin, name)
    g = lambda name: os.path.join(args.golden, name)
    w = lambda name: os.path.join(args.work, name)
    failures = 0

    mlir = w("model.mlir")
    run([tool("mm-import"), args.golden, "-o", mlir])
    golden = read_safetensors(g("grads.safetensors"))
    for recompute in ("false", "true"):
        art = w(f"grad-{recompute}.mmb")
        run([tool("mm-opt"), mlir, "-o", os.devnull, "--mm-compile=mode=train optimizer=none max-batch=2 "
             f"max-seq=64 recompute={recompute} artifact={art}"])
        out = w(f"grads-{recompute}.safetensors")
        run([tool("mm-run"), "grad", art, "--weights", g("weights.safetensors"), "--input-ids", g("ids.npy"),
             "--labels", g("labels.npy"), "-o", out])
        mine = read_safetensors(out)
        if set(mine) != set(golden):
            print(f"FAIL recompute={recompute}: tensors differ: only mm {sorted(set(mine) - set(golden))}, "
                  f"only torch {sorted(set(golden) - set(mine))}")
            failures += 1
            continue
        worst = 0.0
        for name in sorted(golden):
            e = rel(mine[name], golden[name])
            worst = max(worst, e)
            tol = LOSS_TOL if name == "loss" else GRAD_TOL
            ok = e <= tol
            failures += not ok
            if recompute == "false" or not ok:
                print(f"{'ok  ' if ok else 'FAIL'} recompute={recompute} {name}: rel {e:.2e}")
        print(f"recompute={recompute}: {len(golden) - 1} gradients, worst rel error {worst:.2e}")

    hp = json.load(open(g("adamw.json")))
    art = w("adamw.mmb")
    run([tool("mm-opt"), mlir, "-o", os.devnull,
         f"--mm-compile=mode=train optimizer=adamw max-batch={hp['batch']} max-seq={hp['seq']} "
         f"beta1={hp['beta1']} beta2={hp['beta2']} eps={hp['eps']} weight-decay={hp['weight_decay']} "
         f"max-norm={hp['max_norm']} artifact={art}"])
    ckpt = w("adamw-ckpt")
    log = run([tool("mm-run"), "train", art, "--data", g("tokens.bin"), "--steps", str(hp["steps"]),
               "--batch", str(hp["batch"]), "--seq", str(hp["seq"]), "--lr", repr(hp["lr"]),
               "--checkpoint", ckpt, "--weights", g("weights.safetensors")])
    losses = [float(m) for m in re.findall(r"^step \d+ loss (\S+)", log, re.M)]
    for i, (a, b) in enumerate(zip(losses, hp["losses"])):
        e = abs(a - b) / abs(b)
        ok = e <= LOSS_TOL
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} adamw step {i + 1} loss mm {a:.9g} torch {b:.9g}: rel {e:.2e}")
    if len(losses) != hp["steps"]:
        print(f"FAIL: expected {hp['steps']} step lines, got {len(losses)}")
        failures += 1
    final = read_safetensors(os.path.join(ckpt, "checkpoint.safetensors"))
    want = read_safetensors(g("adamw.safetensors"))
    worst = 0.0
    for name in sorted(want):
        if name not in final:
            print(f"FAIL adamw: checkpoint lacks {name}")
            failures += 1
            continue
        e = rel(final[name], want[name])
        worst = max(worst, e)
        if e > WEIGHT_TOL:
            print(f"FAIL adamw weight {name}: rel {e:.2e}")
            failures += 1
    print(f"adamw: {len(want)} weights after {hp['steps']} steps, worst rel error {worst:.2e}")
    if failures:
        sys.exit(f"{failures} failure(s)")
    print("all golden checks passed")


if __name__ == "__main__":
    main()
