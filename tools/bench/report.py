#!/usr/bin/env python3
"""Joins one run's measurements of mm and of the peers into the issue-5 report.

Inputs (all from the same run on the same GPU):
  --peers peers.json        written by tools/bench/peers.py
  --ours ours.jsonl         lines `BENCH {...}` (or bare JSON objects) printed by
                            `KernelTests --bench-sweep`: {"kernel", "T", "H", "D", "ms", ...};
                            the MoE rows also carry "dense_ms", the same process's cuBLASLt
                            SwiGLU FFN of equal FLOPs, which the MoE ratio uses
  --prefill prefill.json    optional, written by tools/bench/prefill.py

Writes OUT/report.md (table, every target met or missed with numbers), OUT/report.json and
OUT/attention_vs_seq.png (time against sequence length, ours vs peers, log-log).
"""
import argparse
import json
import os
import sys


def load_ours(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("BENCH "):
                line = line[len("BENCH "):]
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows


def by_t(rows, kernel):
    return {r["T"]: r for r in rows if r.get("kernel") == kernel}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peers", required=True)
    p.add_argument("--ours", required=True)
    p.add_argument("--prefill")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    with open(args.peers) as f:
        peers = json.load(f)
    ours = load_ours(args.ours)
    prefill = None
    if args.prefill and os.path.exists(args.prefill):
        with open(args.prefill) as f:
            prefill = json.load(f)
    os.makedirs(args.out, exist_ok=True)

    bw = peers["copy"]["tb_per_s"]
    lines = [f"# Issue 5 benchmark: {peers['device']}, {peers['date']}", "",
             f"Command: `{peers['command']}` (peers) and `KernelTests --bench-sweep` (ours), one device "
             f"session. Median of 10 after warm-up, CUDA events, random bf16 inputs, B=1, H=16, D=128. "
             f"Measured copy bandwidth: {bw:.2f} TB/s.", ""]
    targets = []

    # Lightning attention vs flash-linear-attention and the memory floor.
    lines += ["## Lightning attention forward", "",
              "| T | ours ms | floor ms | ours % of floor | fla ms | fla / ours |", "| --- | --- | --- | --- | --- | --- |"]
    fla = {} if isinstance(peers.get("fla_lightning"), dict) else {r["T"]: r for r in peers["fla_lightning"]}
    mine = by_t(ours, "lightning_attention")
    for T in sorted(set(mine) | set(fla)):
        o, f = mine.get(T), fla.get(T)
        floor = 4 * T * 16 * 128 * 2 / (bw * 1e12) * 1e3
        lines.append(f"| {T} | {o['ms']:.3f} | {floor:.3f} | {100 * floor / o['ms']:.0f}% | "
                     f"{f['fwd_ms']:.3f} | {f['fwd_ms'] / o['ms']:.2f}× |" if o and f else
                     f"| {T} | {o['ms'] if o else '—'} | {floor:.3f} | — | {f['fwd_ms'] if f else '—'} | — |")
        if o and T >= 65536:
            frac = floor / o["ms"]
            targets.append((f"lightning fwd ≥ 75% of memory floor, T={T}", frac >= 0.75,
                            f"{100 * frac:.0f}% ({o['ms']:.3f} ms vs floor {floor:.3f} ms)"))
    if isinstance(peers.get("fla_lightning"), dict):
        lines.append(f"\nfla: {peers['fla_lightning']['missing']}")
    lines.append("")

    # Softmax attention vs SDPA.
    lines += ["## Softmax attention forward, causal", "",
              "| T | ours ms | ours TFLOP/s | SDPA ms | SDPA TFLOP/s | ours / SDPA speed |", "| --- | --- | --- | --- | --- | --- |"]
    sdpa = {r["T"]: r for r in peers["sdpa"]}
    mine = by_t(ours, "softmax_attention")
    for T in sorted(set(mine) | set(sdpa)):
        o, s = mine.get(T), sdpa.get(T)
        flops = 4 * 16 * T * T * 128 / 2
        if o and s:
            lines.append(f"| {T} | {o['ms']:.3f} | {flops / o['ms'] / 1e9:.0f} | {s['fwd_ms']:.3f} | "
                         f"{s['fwd_tflops']:.0f} | {s['fwd_ms'] / o['ms']:.2f}× |")
            if T >= 16384:
                targets.append((f"softmax fwd ≥ 1.0× SDPA, T={T}", s["fwd_ms"] / o["ms"] >= 1.0,
                                f"{s['fwd_ms'] / o['ms']:.2f}× ({flops / o['ms'] / 1e9:.0f} vs {s['fwd_tflops']:.0f} TFLOP/s)"))
    lines.append("")

    # MoE vs dense cuBLAS of equal FLOPs.
    # The ratio uses the dense reference of the same process (KernelTests times a SwiGLU FFN of
    # equal FLOPs through cuBLASLt alternately with ours: same clocks); peers.py's torch GEMM in
    # another process is listed for comparison.
    lines += ["## MoE layer vs dense cuBLAS", "",
              "| shape | ours ms | ours TFLOP/s | dense cuBLASLt, same process: ms (TFLOP/s) | "
              "dense torch GEMM TFLOP/s (peers.py) | ratio (same process where measured) |",
              "| --- | --- | --- | --- | --- | --- |"]
    gemms = [r["tflops"] for r in peers.get("gemm", []) if r["shape"].startswith("[16384x1024]")]
    peer = max(gemms) if gemms else float("nan")
    for o in [r for r in ours if r.get("kernel") == "moe"]:
        tf = o["flops"] / o["ms"] / 1e9
        if "dense_ms" in o:
            dtf = o["flops"] / o["dense_ms"] / 1e9
            ratio, how = tf / dtf, "same process"
            dense_cell = f"{o['dense_ms']:.3f} ({dtf:.0f})"
        else:
            ratio, how, dense_cell = tf / peer, "peers.py", "—"
        lines.append(f"| {o['shape']} | {o['ms']:.3f} | {tf:.0f} | {dense_cell} | {peer:.0f} | {ratio:.2f} |")
        targets.append((f"MoE ≥ 80% of dense cuBLAS ({o['shape']})", ratio >= 0.8,
                        f"{100 * ratio:.0f}% ({how}); {100 * tf / peer:.0f}% of peers.py's GEMM"))
    lines.append("")

    # Whole-model prefill.
    if prefill:
        lines += ["## Whole-model prefill, `small` preset", ""]
        for k, v in prefill.items():
            lines.append(f"- {k}: {v}")
        if "ours_tok_s_8k" in prefill and "hf_eager_tok_s_8k" in prefill:
            r = prefill["ours_tok_s_8k"] / prefill["hf_eager_tok_s_8k"]
            targets.append(("small prefill 8K ≥ 10× HF eager", r >= 10, f"{r:.1f}×"))
        if "ours_1m_s" in prefill:
            targets.append(("1M-token prefill of small completes", True, f"{prefill['ours_1m_s']:.2f} s"))
        lines.append("")

    lines += ["## Targets", "", "| target | met | measured |", "| --- | --- | --- |"]
    for name, ok, what in targets:
        lines.append(f"| {name} | {'met' if ok else 'MISSED'} | {what} |")

    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump({"peers": peers, "ours": ours, "prefill": prefill,
                   "targets": [{"target": n, "met": ok, "measured": w} for n, ok, w in targets]}, f, indent=1)

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(8, 5))
        for label, pts, style in [
            ("mm lightning", sorted((r["T"], r["ms"]) for r in ours if r.get("kernel") == "lightning_attention"), "o-"),
            ("fla chunk_lightning_attn", sorted((r["T"], r["fwd_ms"]) for r in fla.values()), "o--"),
            ("mm softmax (causal)", sorted((r["T"], r["ms"]) for r in ours if r.get("kernel") == "softmax_attention"), "s-"),
            ("torch SDPA (causal)", sorted((r["T"], r["fwd_ms"]) for r in peers["sdpa"]), "s--"),
        ]:
            if pts:
                ax.plot([t for t, _ in pts], [m for _, m in pts], style, label=label)
        Ts = sorted({r["T"] for r in ours if r.get("kernel") == "lightning_attention"} | set(fla))
        if Ts:
            ax.plot(Ts, [4 * T * 16 * 128 * 2 / (bw * 1e12) * 1e3 for T in Ts], ":", color="gray",
                    label="lightning memory floor")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T (B=1, H=16, D=128, bf16)")
        ax.set_ylabel("forward time (ms)")
        ax.set_title(f"Attention forward time vs sequence length — {peers['device']}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(args.out, "attention_vs_seq.png"), dpi=120)
    except ImportError as e:
        print(f"report.py: no plot ({e})", file=sys.stderr)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
