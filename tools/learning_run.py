#!/usr/bin/env python3
"""A real learning run on CPU: byte-level language modelling of a Debian-shipped text corpus.

    learning_run.py --bin build/bin --out bench/results/learning-bytes-tiny [--steps 600] [...]

1. The corpus (default /usr/share/common-licenses, from the essential package base-files) becomes byte
   tokens (tools/byte_corpus.py); the last --holdout fraction is held out.
2. models/bytes-tiny (vocab 256) is imported, compiled with --mm-compile=mode=train, initialised by
   models/tiny/gen_weights.py, and trained with `mm-run train`.
3. The held-out loss of the final checkpoint comes from a gradient artifact run once (`mm-run grad`).
4. Writes log.txt (mm-run's output), results.json (numbers) and curve.png (training loss per step, its
   moving average, the unigram entropy as a dashed line) under --out.
--dtype bf16 trains bf16 parameters and activations with fp32 master weights (docs/training.md).
With --check (the short CI version) it only asserts that the loss falls: the mean of the last 5 steps
must be at least --min-drop below the mean of the first 5.
"""
import argparse
import json
import math
import os
import re
import struct
import subprocess
import sys
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r.stdout


def write_png(path, width, height, pixels):
    """pixels: list of rows of (r, g, b) tuples."""
    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in pixels)

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def plot(path, losses, entropy, heldout):
    """Loss (grey), its 20-step moving average (blue), unigram entropy (red dashes), held-out loss (green).
    y axis from 0 to the first loss; a tick every 1 nat on the left, every 100 steps at the bottom."""
    W, H, M = 800, 500, 40
    img = [[(255, 255, 255)] * W for _ in range(H)]
    ymax = math.ceil(max(losses[0], entropy) + 0.5)
    n = len(losses)
    X = lambda i: M + int((W - 2 * M) * i / max(n - 1, 1))
    Y = lambda v: H - M - int((H - 2 * M) * min(max(v, 0), ymax) / ymax)

    def dot(x, y, c, r=0):
        for dx in range(-r, r + 1):
            for dy in range(-r, r + 1):
                if 0 <= x + dx < W and 0 <= y + dy < H:
                    img[y + dy][x + dx] = c

    def line(x0, y0, x1, y1, c, r=0, dash=0):
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for s in range(steps + 1):
            if dash and (s // dash) % 2:
                continue
            dot(x0 + (x1 - x0) * s // steps, y0 + (y1 - y0) * s // steps, c, r)

    black = (0, 0, 0)
    line(M, H - M, W - M, H - M, black)
    line(M, M, M, H - M, black)
    for v in range(0, ymax + 1):
        line(M - 6, Y(v), M, Y(v), black)
        line(M, Y(v), W - M, Y(v), (225, 225, 225))
    for i in range(0, n, 100):
        line(X(i), H - M, X(i), H - M + 6, black)
    for i in range(1, n):
        line(X(i - 1), Y(losses[i - 1]), X(i), Y(losses[i]), (170, 170, 170))
    avg = [sum(losses[max(0, i - 19):i + 1]) / len(losses[max(0, i - 19):i + 1]) for i in range(n)]
    for i in range(1, n):
        line(X(i - 1), Y(avg[i - 1]), X(i), Y(avg[i]), (30, 80, 220), r=1)
    line(M, Y(entropy), W - M, Y(entropy), (220, 30, 30), r=1, dash=8)
    if heldout is not None:
        dot(X(n - 1), Y(heldout), (20, 160, 40), r=5)
    write_png(path, W, H, img)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--corpus", nargs="*", default=["/usr/share/common-licenses"])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--optimizer", default="adamw")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--holdout", type=float, default=0.1)
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--check", action="store_true", help="CI mode: assert the loss falls, write no results")
    ap.add_argument("--min-drop", type=float, default=1.0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    tool = lambda name: os.path.join(args.bin, name)
    out = lambda name: os.path.join(args.out, name)
    work = out("work") if not args.check else args.out
    os.makedirs(work, exist_ok=True)
    w = lambda name: os.path.join(work, name)

    corpus = json.loads(run([args.python, os.path.join(HERE, "byte_corpus.py"), "-o", w("all.bin")] + args.corpus))
    data = open(w("all.bin"), "rb").read()
    split = (len(data) // 2) * (1 - args.holdout)
    split = int(split) * 2
    open(w("train.bin"), "wb").write(data[:split])
    heldout_tokens = struct.unpack(f"<{(len(data) - split) // 2}H", data[split:])

    config = os.path.join(ROOT, "models", "bytes-tiny")
    run([tool("mm-import"), config, "-o", w("model.mlir")])
    run([tool("mm-opt"), w("model.mlir"), "-o", os.devnull,
         f"--mm-compile=mode=train optimizer={args.optimizer} max-batch={args.batch} max-seq={args.seq} "
         f"weight-decay=0.01 max-norm=1.0 dtype={args.dtype} artifact={w('train.mmb')}"])
    run([args.python, os.path.join(ROOT, "models", "tiny", "gen_weights.py"), "--config",
         os.path.join(config, "config.json"), "-o", w("init.safetensors"), "--seed", "0"])
    ckpt = w("checkpoint")
    if os.path.exists(os.path.join(ckpt, "checkpoint.safetensors")):
        os.remove(os.path.join(ckpt, "checkpoint.safetensors"))
    t0 = time.time()
    log = run([tool("mm-run"), "train", w("train.mmb"), "--data", w("train.bin"), "--steps", str(args.steps),
               "--batch", str(args.batch), "--seq", str(args.seq), "--lr", repr(args.lr), "--warmup",
               str(args.warmup), "--checkpoint", ckpt, "--weights", w("init.safetensors"),
               "--save-every", str(max(args.steps // 4, 1))])
    wall = time.time() - t0
    steps = [(int(m[0]), float(m[1]), float(m[2])) for m in
             re.findall(r"^step (\d+) loss (\S+) grad_norm \S+ lr \S+ tok/s (\S+)", log, re.M)]
    losses = [s[1] for s in steps]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    print(f"{args.optimizer} {args.dtype}: loss first-5 mean {first:.4f} -> last-5 mean {last:.4f} over {len(losses)} steps; "
          f"unigram entropy {corpus['unigram_entropy_nats']:.4f} nats")
    if args.check:
        if len(losses) != args.steps or not last < first - args.min_drop:
            sys.exit(f"FAIL: the loss did not fall by {args.min_drop} ({first:.4f} -> {last:.4f})")
        print("ok: the loss falls")
        return

    # Held-out loss: the checkpoint's weights on every full window of the held-out tail (batch of them).
    import numpy as np
    T = args.seq
    nwin = min((len(heldout_tokens) - 1) // T, 64)
    ids = np.array([heldout_tokens[i * T:(i + 1) * T] for i in range(nwin)], dtype=np.int32)
    labels = np.array([heldout_tokens[i * T + 1:(i + 1) * T + 1] for i in range(nwin)], dtype=np.int32)
    np.save(w("heldout_ids.npy"), ids)
    np.save(w("heldout_labels.npy"), labels)
    run([tool("mm-opt"), w("model.mlir"), "-o", os.devnull,
         f"--mm-compile=mode=train optimizer=none max-batch={nwin} max-seq={T} dtype={args.dtype} "
         f"artifact={w('eval.mmb')}"])
    ev = run([tool("mm-run"), "grad", w("eval.mmb"), "--weights", os.path.join(ckpt, "checkpoint.safetensors"),
              "--input-ids", w("heldout_ids.npy"), "--labels", w("heldout_labels.npy"), "-o", w("eval.safetensors")])
    heldout = float(re.search(r"^loss: (\S+)", ev, re.M).group(1))

    with open(out("log.txt"), "w") as f:
        f.write(log)
    tps = sorted(s[2] for s in steps)[len(steps) // 2]
    results = {
        "model": "models/bytes-tiny (vocab 256, hidden 64, 4 layers: 2 lightning + 2 softmax, 4 experts top-2)",
        "corpus": {"paths": args.corpus, "package": "base-files (Essential: yes)", **corpus,
                   "train_tokens": split // 2, "heldout_tokens": len(heldout_tokens)},
        "run": {"steps": args.steps, "batch": args.batch, "seq": args.seq, "lr": args.lr, "warmup": args.warmup,
                "optimizer": args.optimizer, "dtype": args.dtype, "weight_decay": 0.01, "max_norm": 1.0,
                "tokens_seen": args.steps * args.batch * args.seq, "wall_seconds": round(wall, 1),
                "median_tokens_per_second": tps, "backend": "cpu (single-threaded reference kernels)"},
        "loss": {"first_step": losses[0], "first5_mean": first, "last5_mean": last,
                 "last50_mean": sum(losses[-50:]) / len(losses[-50:]), "min": min(losses),
                 "heldout_final": heldout, "heldout_windows": int(nwin),
                 "unigram_entropy_nats": corpus["unigram_entropy_nats"],
                 "heldout_bits_per_byte": heldout / math.log(2)},
    }
    with open(out("results.json"), "w") as f:
        json.dump(results, f, indent=2)
    plot(out("curve.png"), losses, corpus["unigram_entropy_nats"], heldout)
    print(json.dumps(results["loss"], indent=2))


if __name__ == "__main__":
    main()
