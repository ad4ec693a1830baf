"""Checks and times the bf16 softmax attention kernel (test/gpu/attention_bench.cu, built as a
shared library) next to torch SDPA (is_causal=True) in one run on one GPU.

usage: python3 attention_bench.py LIB [variant ...]   (ATTN_QUICK=1: the small correctness shapes
only, e.g. under compute-sanitizer)
Correctness: relative Frobenius error against float64 attention (small shapes) or against fp32
SDPA (large shapes), fresh random inputs, output poisoned with NaN first. Timing: CUDA events,
median of 10 after 3 warm-ups; causal FLOPs = 2·2·B·Hq·T²·D / 2.
"""
import ctypes
import math
import os
import sys

import torch
import torch.nn.functional as F

lib = ctypes.CDLL(sys.argv[1])
lib.attn_bf16.restype = ctypes.c_int
lib.attn_bf16.argtypes = [ctypes.c_int] + [ctypes.c_void_p] * 4 + [ctypes.c_longlong] * 4 + [
    ctypes.c_int, ctypes.c_double, ctypes.c_void_p]
variants = [int(v) for v in sys.argv[2:]] or [0]
names = {0: "mma128x64", 1: "mma64x64",
         5: "fa3", 6: "fa3pp", 7: "fa3ppK", 8: "fa3s2ppK", 9: "fa3ppKP", 10: "fa3KP",
         11: "fa3K", 12: "tmappK", 13: "tmas2ppK", 14: "tmaK", 15: "tmapp", 16: "tmaL2", 17: "tmas2K"}
dev = torch.device("cuda")
QUICK = os.environ.get("ATTN_QUICK") == "1"
print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)


def ours(variant, q, k, v, B, T, H, HKV, D, out=None):
    if out is None:
        out = torch.full_like(q, float("nan"))
    rc = lib.attn_bf16(variant, q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(), B, T, H,
                       HKV, D, 1.0 / math.sqrt(D), torch.cuda.current_stream().cuda_stream)
    assert rc == 0, f"launch failed: {rc}"
    return out


def inputs(B, T, H, HKV, D):
    q = torch.randn(B, T, H * D, device=dev).bfloat16()
    k = torch.randn(B, T, HKV * D, device=dev).bfloat16()
    v = torch.randn(B, T, HKV * D, device=dev).bfloat16()
    return q, k, v


def heads(x, B, T, H, D):
    return x.view(B, T, H, D).transpose(1, 2)


def reference(q, k, v, B, T, H, HKV, D, dtype):
    qh, kh, vh = (heads(x.to(dtype), B, T, n, D) for x, n in ((q, H), (k, HKV), (v, HKV)))
    kh = kh.repeat_interleave(H // HKV, dim=1)
    vh = vh.repeat_interleave(H // HKV, dim=1)
    if dtype == torch.float64:
        s = (qh @ kh.transpose(-1, -2)) / math.sqrt(D)
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=dev).triu(1), float("-inf"))
        o = torch.softmax(s, -1) @ vh
    else:
        o = F.scaled_dot_product_attention(qh, kh, vh, is_causal=True)
    return o.transpose(1, 2).reshape(B, T, H * D)


fails = 0
print("\n== correctness (rel err vs reference; bf16 tolerance 1e-2)")
for (B, T, H, HKV, D) in [(2, 37, 4, 2, 128), (1, 257, 4, 4, 128), (1, 1000, 8, 1, 128),
                          (2, 300, 4, 2, 64), (1, 333, 8, 2, 64), (2, 1, 2, 1, 128),
                          (1, 4096, 16, 8, 128), (1, 16384, 16, 16, 128)]:
    if QUICK and T > 1000:
        continue
    q, k, v = inputs(B, T, H, HKV, D)
    ref = reference(q, k, v, B, T, H, HKV, D, torch.float64 if T <= 1000 else torch.float32)
    ref = ref.double()
    for var in variants:
        if D == 64 and var > 1:
            continue
        o = ours(var, q, k, v, B, T, H, HKV, D)
        torch.cuda.synchronize()
        err = ((o.double() - ref).norm() / ref.norm()).item()
        ok = torch.isfinite(o).all().item() and err <= 1e-2
        fails += not ok
        print(f"B={B} T={T:6d} Hq={H:2d} Hkv={HKV:2d} D={D:3d} tile {names[var]:7s} rel err "
              f"{err:.2e} {'ok' if ok else 'FAIL'}", flush=True)
    if T == 16384:  # the peer's own error against the same fp32 reference
        sd = F.scaled_dot_product_attention(heads(q, B, T, H, D), heads(k, B, T, HKV, D),
                                            heads(v, B, T, HKV, D), is_causal=True)
        sd = sd.transpose(1, 2).reshape(B, T, H * D).double()
        print(f"   (SDPA bf16 rel err vs the same reference: "
              f"{((sd - ref).norm() / ref.norm()).item():.2e})")
    del q, k, v, ref


def timed(fn, reps=10):
    for _ in range(3):
        fn()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


if QUICK:
    print(f"\ncorrectness failures: {fails}")
    sys.exit(1 if fails else 0)
print("\n== speed (median of 10, CUDA events), TFLOP/s = 2*2*B*Hq*T^2*D/2 / time")
rows = []
for (T, H, HKV) in [(4096, 16, 16), (16384, 16, 16), (65536, 16, 16), (131072, 16, 16),
                    (16384, 16, 8)]:
    B, D = 1, 128
    q, k, v = inputs(B, T, H, HKV, D)
    qh = heads(q, B, T, H, D).contiguous()
    kh = heads(k, B, T, HKV, D).contiguous()
    vh = heads(v, B, T, HKV, D).contiguous()
    flops = 2 * 2 * B * H * T * T * D / 2
    gqa = HKV != H
    ms_sdpa = timed(lambda: F.scaled_dot_product_attention(qh, kh, vh, is_causal=True,
                                                           enable_gqa=gqa))
    out = torch.empty_like(q)
    line = f"T={T:6d} Hq={H} Hkv={HKV:2d} | SDPA {ms_sdpa:8.3f} ms {flops / ms_sdpa / 1e9:6.1f} TF/s"
    for var in variants:
        ms = timed(lambda: ours(var, q, k, v, B, T, H, HKV, D, out))
        line += f" | {names[var]} {ms:8.3f} ms {flops / ms / 1e9:6.1f} TF/s ({ms_sdpa / ms:4.2f}x)"
    print(line, flush=True)
    del q, k, v, qh, kh, vh, out
print(f"\ncorrectness failures: {fails}")
sys.exit(1 if fails else 0)
