# Times flash-linear-attention's chunk_lightning_attn (the peer of TARGETS.md) at B=1, H=16, D=128
# bf16, CUDA events, median of 10 after warm-up. Usage: PYTHONPATH=<dir holding fla> python3 this [T...]
import sys, torch
from fla.ops.lightning_attn import chunk_lightning_attn

H, D = 16, 128
Ts = [int(x) for x in sys.argv[1:]] or [4096, 16384, 65536, 262144, 1048576]
x = torch.empty(2 << 30, dtype=torch.uint8, device="cuda"); y = torch.empty_like(x)
def med(f, n=10):
    for _ in range(2): f()
    torch.cuda.synchronize(); ts = []
    for _ in range(n):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); f(); b.record(); b.synchronize(); ts.append(a.elapsed_time(b))
    return sorted(ts)[len(ts) // 2]
copy = 2 * x.numel() / med(lambda: y.copy_(x)) / 1e6
del x, y
print(f"peer copy: {copy:.0f} GB/s", flush=True)
for T in Ts:
    q, k, v = (torch.rand(1, T, H, D, device="cuda", dtype=torch.bfloat16) * 2 - 1 for _ in range(3))
    ms = med(lambda: chunk_lightning_attn(q, k, v, layer_idx=0, num_layers=8))
    gbs = 4 * T * H * D * 2 / ms / 1e6
    print(f"fla T={T:8d} {ms:8.3f} ms {gbs:6.0f} GB/s {100*gbs/copy:5.1f}% of copy", flush=True)
    del q, k, v; torch.cuda.empty_cache()
