#!/usr/bin/env python3
"""HF transformers eager training step of a MiniMax config: the peer of `mm-run train --backend cuda`
(TARGETS.md: `small` at 8K tokens).

    hf_train.py --config models/small/config.json --seq 8192 [--steps 8] [--warmup 2] [--mode bf16|amp]

Builds MiniMaxForCausalLM from the config (attn_implementation="eager", random init) on cuda and times
full training steps, as mm's bf16 training step does them: forward, mean cross-entropy over all
positions, backward, clip_grad_norm_(1.0), torch.optim.AdamW step, zero_grad. --mode bf16 keeps the
parameters in bf16 (the cheapest setting for HF; its optimizer then runs on bf16 parameters), --mode amp
keeps fp32 parameters with bf16 autocast (fp32 master weights, like mm's dtype=bf16 training). CUDA
events around each step; prints the median ms, tokens/s, and the MFU against --peak-tflops at the same
FLOP count mm-run train uses (--gflop-per-token, from its "train:" line).
"""
import argparse
import json
import os
import statistics
import tempfile

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--seq", type=int, default=8192)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--mode", choices=["bf16", "amp"], default="bf16")
    ap.add_argument("--gflop-per-token", type=float, default=0.0)
    ap.add_argument("--peak-tflops", type=float, default=756.0)
    args = ap.parse_args()
    with open(args.config) as f:
        cfg_dict = json.load(f)
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg_dict, f)
        cfg = AutoConfig.from_pretrained(d)
    torch.manual_seed(0)
    dtype = torch.bfloat16 if args.mode == "bf16" else torch.float32
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=dtype).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    ids = torch.randint(0, cfg.vocab_size, (1, args.seq + 1), device="cuda")
    x, y = ids[:, :-1], ids[:, 1:]

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.mode == "amp"):
            logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    ms, losses = [], []
    for _ in range(args.steps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        loss = step()
        b.record()
        b.synchronize()
        ms.append(a.elapsed_time(b))
        losses.append(loss.item())
    med = statistics.median(ms)
    tok = args.seq / med * 1e3
    mfu = args.gflop_per_token * 1e9 * tok / (args.peak_tflops * 1e12) * 100 if args.gflop_per_token else 0
    print(f"hf-train: {torch.cuda.get_device_name()} transformers eager, mode {args.mode}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params, B=1 T={args.seq}: median {med:.1f} ms "
          f"(min {min(ms):.1f}, max {max(ms):.1f}) over {args.steps} steps, {tok:.0f} tok/s, mfu {mfu:.1f}%, "
          f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB, last loss {losses[-1]:.3f}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
