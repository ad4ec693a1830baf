#!/usr/bin/env python3
"""PyTorch's own bf16 gradient error on a golden of tools/make_golden_grads.py: the yardstick for mm's
bf16 gradients.

    torch_bf16_grads.py GOLDEN_DIR

Loads the golden's weights into transformers' MiniMaxForCausalLM, runs forward + backward once in fp32
(must reproduce the golden exactly) and once with the model cast to bf16, and prints the bf16
gradients' relative L2 error against the fp32 golden: all gradients together, the worst tensor and the
median tensor. Needs torch + transformers.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from transformers import MiniMaxConfig, MiniMaxForCausalLM

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "..", "tools"))
from check_golden import read_safetensors  # noqa: E402
from make_golden_grads import to_mm  # noqa: E402


def load(model, w):
    with torch.no_grad():
        for k, p in model.named_parameters():
            if ".mlp.experts.gate_up_proj" in k:
                pre = k.replace("mlp.experts.gate_up_proj", "block_sparse_moe.experts.")
                E = p.shape[0]
                w1 = torch.stack([torch.tensor(w[pre + f"{e}.w1.weight"]) for e in range(E)])
                w3 = torch.stack([torch.tensor(w[pre + f"{e}.w3.weight"]) for e in range(E)])
                p.copy_(torch.cat([w1, w3], 1))
            elif ".mlp.experts.down_proj" in k:
                pre = k.replace("mlp.experts.down_proj", "block_sparse_moe.experts.")
                p.copy_(torch.stack([torch.tensor(w[pre + f"{e}.w2.weight"]) for e in range(p.shape[0])]))
            else:
                p.copy_(torch.tensor(w[k.replace(".mlp.gate.", ".block_sparse_moe.gate.")]))


def grads(g, dtype):
    cfgd = json.load(open(os.path.join(g, "config.json")))
    cfg = MiniMaxConfig(**{k: v for k, v in cfgd.items() if k != "architectures"})
    cfg._attn_implementation = "eager"
    model = MiniMaxForCausalLM(cfg).float().eval()
    load(model, read_safetensors(os.path.join(g, "weights.safetensors")))
    model = model.to(dtype)
    ids = torch.tensor(np.load(os.path.join(g, "ids.npy"))).long()
    labels = torch.tensor(np.load(os.path.join(g, "labels.npy"))).long()
    logits = model(input_ids=ids).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)
    loss.backward()
    return loss.item(), to_mm({k: p.grad.float() for k, p in model.named_parameters()}, stacked=True)


def main():
    g = sys.argv[1]
    golden = read_safetensors(os.path.join(g, "grads.safetensors"))
    rel = lambda a, b: float(np.linalg.norm(np.ravel(a) - np.ravel(b)) / np.linalg.norm(np.ravel(b)))
    _, g32 = grads(g, torch.float32)
    exact = max(rel(g32[k], golden["grad:" + k]) for k in g32)
    loss, gb = grads(g, torch.bfloat16)
    names = sorted(gb)
    errs = sorted((rel(gb[k], golden["grad:" + k]), k) for k in names)
    together = rel(np.concatenate([np.ravel(gb[k]) for k in names]),
                   np.concatenate([np.ravel(golden["grad:" + k]) for k in names]))
    print(f"torch bf16 vs fp32 golden {os.path.basename(g.rstrip('/'))}: loss {loss:.6f} vs "
          f"{float(np.ravel(golden['loss'])[0]):.6f}, all gradients rel {together:.2e}, worst tensor "
          f"{errs[-1][0]:.2e} {errs[-1][1]}, median {errs[len(errs) // 2][0]:.2e} (fp32 replay {exact:.1e})")


if __name__ == "__main__":
    main()
