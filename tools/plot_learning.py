#!/usr/bin/env python3
"""Redraws a learning run's curve with labelled axes (matplotlib), from the files that
tools/learning_run.py wrote: DIR/log.txt (one "step N loss L ..." line per step) and
DIR/results.json (corpus unigram entropy, held-out loss). learning_run.py's own curve.png is a
dependency-free fallback without text.

usage: plot_learning.py DIR [-o DIR/curve.png]
"""
import argparse
import json
import os
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("-o", "--out")
    a = ap.parse_args()
    steps, losses = [], []
    with open(os.path.join(a.dir, "log.txt")) as f:
        for line in f:
            m = re.match(r"step (\d+) loss ([0-9.eE+-]+)", line)
            if m:
                steps.append(int(m.group(1)))
                losses.append(float(m.group(2)))
    with open(os.path.join(a.dir, "results.json")) as f:
        res = json.load(f)
    entropy = res["corpus"]["unigram_entropy_nats"]
    held = res["loss"].get("heldout_final")
    window = 20
    avg = [sum(losses[max(0, i - window + 1):i + 1]) / len(losses[max(0, i - window + 1):i + 1])
           for i in range(len(losses))]
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(steps, losses, color="0.7", lw=0.8, label="training loss (per step)")
    ax.plot(steps, avg, color="tab:blue", lw=2, label=f"training loss ({window}-step mean)")
    ax.axhline(entropy, color="tab:red", ls="--", label=f"corpus unigram entropy {entropy:.3f} nats")
    if held is not None:
        ax.plot([steps[-1]], [held], "s", color="tab:green", ms=8, label=f"held-out loss {held:.3f} nats")
    ax.set_xlabel("step (batch 8 × 128 byte tokens)")
    ax.set_ylabel("cross-entropy (nats per byte)")
    ax.set_title("mm-run train (CPU backend): bytes-tiny on /usr/share/common-licenses")
    ax.set_ylim(0, max(losses[0], entropy) + 0.5)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(a.out or os.path.join(a.dir, "curve.png"), dpi=110)


if __name__ == "__main__":
    main()
