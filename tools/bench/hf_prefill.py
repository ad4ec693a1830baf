#!/usr/bin/env python3
"""HF transformers eager prefill of a MiniMax config with random bf16 weights: the peer of
mm's whole-model prefill (TARGETS.md).

    hf_prefill.py --config models/small/config.json --seq 8192 [--repeat 10] [--warmup 2]

Builds MiniMaxForCausalLM from the config (attn_implementation="eager", random init, bf16, on
cuda), then times model(input_ids, logits_to_keep=1) — the prefill of generate(), which projects
only the last position, as mm's logits=last artifact does — with CUDA events: warm-up runs, then
the median of --repeat. Prints one line "hf-prefill: ..." with the median ms and tokens/s, and the
same for full [1, T, V] logits.
"""
import argparse
import json
import os
import statistics
import tempfile

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def time_forward(model, ids, repeat, warmup, **kw):
    with torch.no_grad():
        for _ in range(warmup):
            model(input_ids=ids, **kw)
        torch.cuda.synchronize()
        ms = []
        for _ in range(repeat):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            model(input_ids=ids, **kw)
            b.record()
            b.synchronize()
            ms.append(a.elapsed_time(b))
    return statistics.median(ms), min(ms), max(ms)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--seq", type=int, default=8192)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    with open(args.config) as f:
        cfg_dict = json.load(f)
    with tempfile.TemporaryDirectory() as d:   # AutoConfig reads a folder
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg_dict, f)
        cfg = AutoConfig.from_pretrained(d)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.bfloat16)
    model = model.to(args.device).eval()
    params = sum(p.numel() for p in model.parameters())
    ids = torch.randint(0, cfg.vocab_size, (1, args.seq), device=args.device)
    if args.device != "cuda":   # API check only
        with torch.no_grad():
            out = model(input_ids=ids, logits_to_keep=1)
        print(f"hf-prefill: {args.device} forward ok, logits {tuple(out.logits.shape)}, {params} params")
        return 0
    med, lo, hi = time_forward(model, ids, args.repeat, args.warmup, logits_to_keep=1)
    print(f"hf-prefill: {torch.cuda.get_device_name()} transformers eager bf16, {params / 1e6:.1f}M params, "
          f"B=1 T={args.seq}, logits_to_keep=1: median {med:.2f} ms (min {lo:.2f}, max {hi:.2f}) "
          f"over {args.repeat}, {args.seq / med * 1e3:.0f} tok/s", flush=True)
    med, lo, hi = time_forward(model, ids, max(3, args.repeat // 3), 1)
    print(f"hf-prefill: same, full [1, T, V] logits: median {med:.2f} ms, {args.seq / med * 1e3:.0f} tok/s",
          flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
