#!/usr/bin/env python3
"""Times the peers mm is measured against (TARGETS.md), on the GPU this runs on.

Peers: torch SDPA (causal softmax attention), flash-linear-attention's chunk_lightning_attn
(when its sources are on PYTHONPATH, e.g. a carried `.peers/fla`; otherwise reported missing),
cuBLAS bf16 GEMMs at the MoE shapes of the `small` preset, the chip's copy bandwidth (the memory
floor of lightning attention), and HF transformers eager prefill of the `small` preset.

Every time is the median of --iters runs after --warmup runs, measured with CUDA events, on
random bf16 inputs. Writes peers.json (and prints a table) into --out.

usage: peers.py --out DIR [--quick] [--small-config models/small/config.json]
"""
import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time


def cuda_time_ms(fn, warmup, iters):
    import torch
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def bench_copy_bandwidth(args):
    import torch
    n = 1 << 30  # 1 GiB each way
    src = torch.empty(n, dtype=torch.uint8, device="cuda").random_(0, 255)
    dst = torch.empty_like(src)
    ms = cuda_time_ms(lambda: dst.copy_(src), args.warmup, args.iters)
    return {"what": "d2d copy 1 GiB", "ms": ms, "tb_per_s": 2 * n / (ms * 1e-3) / 1e12}


def bench_sdpa(args, seqs):
    import torch
    import torch.nn.functional as F
    rows = []
    B, H, D = 1, 16, 128
    for T in seqs:
        q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        fwd = cuda_time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                           args.warmup, args.iters)
        flops = 4 * B * H * T * T * D / 2  # causal: half of QK^T and PV
        row = {"T": T, "fwd_ms": fwd, "fwd_tflops": flops / (fwd * 1e-3) / 1e12}
        if T <= args.max_bwd_seq:
            qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))
            do = torch.randn_like(q)

            def fwd_bwd():
                o = F.scaled_dot_product_attention(qg, kg, vg, is_causal=True)
                o.backward(do)
            row["fwd_bwd_ms"] = cuda_time_ms(fwd_bwd, args.warmup, args.iters)
        rows.append(row)
        del q, k, v
        torch.cuda.empty_cache()
    return rows


def bench_fla(args, seqs, bandwidth):
    import torch
    try:
        from fla.ops.lightning_attn import chunk_lightning_attn
    except Exception as e:  # noqa: BLE001 - report why the peer is missing
        return {"missing": f"flash-linear-attention not importable: {type(e).__name__}: {e}"}
    rows = []
    B, H, D = 1, 16, 128
    for T in seqs:
        q, k, v = (torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        fwd = cuda_time_ms(lambda: chunk_lightning_attn(q, k, v, layer_idx=0, num_layers=8),
                           args.warmup, args.iters)
        floor_ms = 4 * T * H * D * 2 / (bandwidth * 1e12) * 1e3
        row = {"T": T, "fwd_ms": fwd, "floor_ms": floor_ms, "fraction_of_floor": floor_ms / fwd}
        if T <= args.max_lightning_bwd_seq:
            qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))
            do = torch.randn_like(q)

            def fwd_bwd():
                o, _ = chunk_lightning_attn(qg, kg, vg, layer_idx=0, num_layers=8)
                o.backward(do)
            row["fwd_bwd_ms"] = cuda_time_ms(fwd_bwd, args.warmup, args.iters)
        rows.append(row)
        del q, k, v
        torch.cuda.empty_cache()
    return rows


def bench_gemm(args):
    import torch
    rows = []
    for m, k, n in [(16384, 1024, 2048), (16384, 1024, 1024), (8192, 4096, 4096)]:
        a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(k, n, device="cuda", dtype=torch.bfloat16)
        ms = cuda_time_ms(lambda: a @ b, args.warmup, args.iters)
        rows.append({"shape": f"[{m}x{k}]x[{k}x{n}]", "ms": ms,
                     "tflops": 2 * m * k * n / (ms * 1e-3) / 1e12})
    return rows


def bench_hf_prefill(args):
    import torch
    try:
        from transformers import MiniMaxConfig, MiniMaxForCausalLM
    except Exception as e:  # noqa: BLE001
        return {"missing": f"transformers MiniMax not importable: {e}"}
    with open(args.small_config) as f:
        cfg = json.load(f)
    known = MiniMaxConfig().to_dict()
    config = MiniMaxConfig(**{k: v for k, v in cfg.items() if k in known})
    torch.manual_seed(0)
    model = MiniMaxForCausalLM(config).to(device="cuda", dtype=torch.bfloat16).eval()
    rows = []
    for T in [args.prefill_tokens]:
        ids = torch.randint(0, config.vocab_size, (1, T), device="cuda")
        with torch.no_grad():
            ms = cuda_time_ms(lambda: model(input_ids=ids, use_cache=False), 2, max(3, args.iters // 2))
        rows.append({"T": T, "ms": ms, "tokens_per_s": T / (ms * 1e-3), "mode": "eager"})
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true", help="fewer, shorter sequences")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--max-bwd-seq", type=int, default=16384)
    p.add_argument("--max-lightning-bwd-seq", type=int, default=262144)
    p.add_argument("--small-config", default="models/small/config.json")
    p.add_argument("--prefill-tokens", type=int, default=8192)
    args = p.parse_args()

    import torch
    if not torch.cuda.is_available():
        print("peers.py: error: no CUDA device", file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    result = {
        "device": torch.cuda.get_device_name(0),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "torch": torch.__version__,
    }
    t0 = time.time()
    result["copy"] = bench_copy_bandwidth(args)
    bw = result["copy"]["tb_per_s"]
    sdpa_seqs = [4096, 16384] if args.quick else [4096, 16384, 65536, 131072]
    fla_seqs = [4096, 65536] if args.quick else [4096, 16384, 65536, 262144, 1048576]
    result["sdpa"] = bench_sdpa(args, sdpa_seqs)
    result["fla_lightning"] = bench_fla(args, fla_seqs, bw)
    result["gemm"] = bench_gemm(args)
    if os.path.exists(args.small_config):
        result["hf_prefill_small"] = bench_hf_prefill(args)
    else:
        result["hf_prefill_small"] = {"missing": f"{args.small_config} not found"}
    result["seconds"] = time.time() - t0

    with open(os.path.join(args.out, "peers.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"device: {result['device']}  torch {result['torch']}  ({result['seconds']:.0f} s)")
    print(f"copy bandwidth: {bw:.2f} TB/s")
    for r in result["sdpa"]:
        print(f"sdpa   T={r['T']:>8}  fwd {r['fwd_ms']:8.3f} ms ({r['fwd_tflops']:.0f} TFLOP/s)"
              + (f"  fwd+bwd {r['fwd_bwd_ms']:8.3f} ms" if "fwd_bwd_ms" in r else ""))
    if isinstance(result["fla_lightning"], dict):
        print("fla    " + result["fla_lightning"]["missing"])
    else:
        for r in result["fla_lightning"]:
            print(f"fla    T={r['T']:>8}  fwd {r['fwd_ms']:8.3f} ms (floor {r['floor_ms']:.3f} ms,"
                  f" {100 * r['fraction_of_floor']:.0f}%)"
                  + (f"  fwd+bwd {r['fwd_bwd_ms']:8.3f} ms" if "fwd_bwd_ms" in r else ""))
    for r in result["gemm"]:
        print(f"gemm   {r['shape']:<24} {r['ms']:8.3f} ms ({r['tflops']:.0f} TFLOP/s)")
    hf = result["hf_prefill_small"]
    if isinstance(hf, dict):
        print("hf     " + hf["missing"])
    else:
        for r in hf:
            print(f"hf     small prefill T={r['T']} {r['ms']:.1f} ms ({r['tokens_per_s']:.0f} tok/s, {r['mode']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
