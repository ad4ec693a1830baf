"""cuBLAS peer of the MoE layer (test/gpu/MoeBench.cu): dense bf16 torch.matmul of the same FLOPs,
[M×H]·[H×2I] then [M×I]·[I×H] with M = rows·k, CUDA events, median of 20 after 3 warm-ups."""
import sys
import torch

def median_ms(f):
    for _ in range(3):
        f()
    ts = []
    for _ in range(20):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); f(); b.record(); b.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]

print("peer device:", torch.cuda.get_device_name(0), "torch", torch.__version__)
for rows, H, E, I, k in [(8192, 1024, 8, 1024, 2), (16384, 1024, 8, 1024, 2)]:
    M = rows * k
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(M, H, device="cuda", dtype=torch.bfloat16, generator=g)
    wu = torch.randn(H, 2 * I, device="cuda", dtype=torch.bfloat16, generator=g) * H ** -0.5
    h = torch.randn(M, I, device="cuda", dtype=torch.bfloat16, generator=g)
    wd = torch.randn(I, H, device="cuda", dtype=torch.bfloat16, generator=g) * I ** -0.5
    t_up = median_ms(lambda: torch.matmul(x, wu))
    t_dn = median_ms(lambda: torch.matmul(h, wd))
    t_both = median_ms(lambda: (torch.matmul(x, wu), torch.matmul(h, wd)))
    f_up, f_dn = 2.0 * M * H * 2 * I, 2.0 * M * I * H
    print(f"PEER M={M} H={H} I={I}: up {t_up:.3f} ms ({f_up / t_up * 1e-9:.0f} TFLOP/s) "
          f"down {t_dn:.3f} ms ({f_dn / t_dn * 1e-9:.0f}) both {t_both:.3f} ms "
          f"({(f_up + f_dn) / t_both * 1e-9:.0f} TFLOP/s)")
