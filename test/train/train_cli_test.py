#!/usr/bin/env python3
"""mm-run train: resume is bit-identical, checkpoints survive kill -9, NaN/Inf is reported by name.

    train_cli_test.py --bin build/bin --model test/golden/grads-tiny --work DIR [--dtype bf16]

1. Resume: 8 uninterrupted steps vs 4 steps + --resume to 8. The loss lines of steps 5..8 must be
   identical strings (%.9g of an f32: equal strings mean equal bits) and the final checkpoints must hold
   bit-identical weights and optimizer states.
2. Kill: a run saving every step is killed with SIGKILL at random moments; after each kill the
   checkpoint must parse, and --resume from it must run.
3. NaN: a weight file with one NaN makes the run fail with a message naming the first bad tensor.

With --dtype bf16 (bf16 parameters, fp32 master weights) only 1 runs, and it also checks that every
checkpointed weight is its master:<weight> state rounded to bf16 (nearest even).
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import time

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        lo, hi = info["data_offsets"]
        out[name] = data[8 + n + lo:8 + n + hi]
    return meta, out


def run(cmd, expect_ok=True):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if expect_ok and r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r


def losses(text):
    return {int(s): l for s, l in re.findall(r"^step (\d+) loss (\S+)", text, re.M)}


def round_bf16(x):
    u = x.astype("<f4").view("<u4").astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype("<u4").view("<f4")


def check_bf16_params(tensors):
    """Each checkpointed weight must be its fp32 master rounded to bf16 (stacked experts split)."""
    masters = [k for k in tensors if k.startswith("master:")]
    if not masters:
        sys.exit("FAIL: a dtype=bf16 checkpoint has no master:<weight> states")
    checked = 0
    for key in masters:
        name = key[len("master:"):]
        master = np.frombuffer(tensors[key], "<f4")
        parts = [name]
        if "{e}" in name:
            parts = []
            while name.replace("{e}", str(len(parts))) in tensors:
                parts.append(name.replace("{e}", str(len(parts))))
        param = np.concatenate([np.frombuffer(tensors[p], "<f4") for p in parts])
        if param.size != master.size:
            sys.exit(f"FAIL: {name}: {param.size} checkpointed values but {master.size} in its master")
        if not np.array_equal(param, round_bf16(master)):
            sys.exit(f"FAIL: {name} is not its master rounded to bf16")
        if np.array_equal(master, param):
            sys.exit(f"FAIL: {name}: the master holds no more than bf16")
        checked += 1
    print(f"ok: {checked} bf16 parameters are their fp32 masters rounded to nearest even")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model", required=True, help="folder with config.json and weights.safetensors")
    ap.add_argument("--work", required=True)
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    tool = lambda n: os.path.join(args.bin, n)
    w = lambda n: os.path.join(args.work, n)
    weights = os.path.join(args.model, "weights.safetensors")
    vocab = json.load(open(os.path.join(args.model, "config.json")))["vocab_size"]

    rng = np.random.default_rng(7)
    rng.integers(0, vocab, 4000).astype("<u2").tofile(w("tokens.bin"))
    run([tool("mm-import"), args.model, "-o", w("m.mlir")])
    run([tool("mm-opt"), w("m.mlir"), "-o", os.devnull,
         f"--mm-compile=mode=train optimizer=adamw weight-decay=0.1 max-batch=2 max-seq=32 dtype={args.dtype} "
         f"artifact={w('t.mmb')}"])
    base = [tool("mm-run"), "train", w("t.mmb"), "--data", w("tokens.bin"), "--batch", "2", "--seq", "32",
            "--lr", "0.002", "--warmup", "3"]

    # 1. Resume.
    a = run(base + ["--steps", "8", "--checkpoint", w("a"), "--weights", weights]).stdout
    run(base + ["--steps", "4", "--checkpoint", w("b"), "--weights", weights])
    b = run(base + ["--steps", "8", "--checkpoint", w("b"), "--resume"]).stdout
    la, lb = losses(a), losses(b)
    if sorted(lb) != [5, 6, 7, 8]:
        sys.exit(f"FAIL: the resumed run ran steps {sorted(lb)}, expected 5..8\n{b}")
    for s in range(5, 9):
        if la[s] != lb[s]:
            sys.exit(f"FAIL: step {s} loss {lb[s]} after resume but {la[s]} uninterrupted")
    meta_a, ta = read_safetensors(w("a/checkpoint.safetensors"))
    meta_b, tb = read_safetensors(w("b/checkpoint.safetensors"))
    if ta != tb or meta_a["step"] != "8" or meta_b["step"] != "8":
        diff = [k for k in ta if ta[k] != tb.get(k)]
        sys.exit(f"FAIL: final checkpoints differ in {diff[:5]} (steps {meta_a['step']}, {meta_b['step']})")
    states = [k for k in ta if k.startswith(("adamw.", "master:"))]
    print(f"ok: resume is bit-identical (losses of steps 5-8, {len(ta) - len(states)} weights, "
          f"{len(states)} optimizer states)")
    if args.dtype == "bf16":
        check_bf16_params(ta)
        return

    # 2. kill -9 at random moments while checkpointing every step.
    random.seed(3)
    kills = 0
    for i in range(6):
        ck = w(f"k{i}")
        p = subprocess.Popen(base + ["--steps", "100000", "--save-every", "1", "--checkpoint", ck,
                                     "--weights", weights], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.3 + random.random() * 0.5)
        p.send_signal(signal.SIGKILL)
        p.wait()
        path = os.path.join(ck, "checkpoint.safetensors")
        if not os.path.exists(path):
            continue  # killed before the first save
        meta, tensors = read_safetensors(path)
        step = int(meta["step"])
        r = run(base + ["--steps", str(step + 1), "--checkpoint", ck, "--resume"], expect_ok=False)
        if r.returncode != 0 or sorted(losses(r.stdout)) != [step + 1]:
            sys.exit(f"FAIL: resuming after kill {i} (checkpoint step {step}) failed:\n{r.stdout}{r.stderr}")
        kills += 1
    if kills < 3:
        sys.exit(f"FAIL: only {kills} of 6 killed runs had written a checkpoint")
    print(f"ok: {kills} runs killed with SIGKILL left a complete, resumable checkpoint")

    # 3. A NaN in one weight is reported with the first tensor it poisons.
    with open(weights, "rb") as f:
        data = bytearray(f.read())
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    bad = "model.layers.1.self_attn.q_proj.weight"
    lo = header[bad]["data_offsets"][0]
    data[8 + n + lo:8 + n + lo + 4] = struct.pack("<f", float("nan"))
    open(w("nan.safetensors"), "wb").write(data)
    r = run(base + ["--steps", "1", "--checkpoint", w("nan"), "--weights", w("nan.safetensors")], expect_ok=False)
    msg = r.stderr.strip()
    if r.returncode == 0 or "non-finite value NaN in tensor" not in msg or \
            "model.layers.1.self_attn.q_proj" not in msg:
        sys.exit(f"FAIL: expected a NaN error naming model.layers.1.self_attn.q_proj, got: {msg}")
    print(f"ok: NaN reported: {msg}")


if __name__ == "__main__":
    main()
