#!/usr/bin/env python3
"""Golden gradients and AdamW steps from PyTorch autograd through transformers' MiniMaxForCausalLM.

    /work/torchenv/bin/python tools/make_golden_grads.py -o test/golden/grads-tiny

Needs torch + transformers (the checker, test/golden/check_golden.py, needs only numpy). Writes:

  config.json            the model (Hugging Face MiniMax schema; read by both mm-import and transformers)
  weights.safetensors    random fp32 weights under mm's checkpoint names (per-expert
                         block_sparse_moe.experts.{e}.w1/w2/w3, split from transformers'
                         mlp.experts.gate_up_proj [E, 2I, H] (gate rows first) and down_proj [E, H, I])
  ids.npy, labels.npy    one batch [B, T] (a label of -100 is ignored)
  grads.safetensors      "loss" and "grad:<name>" of every weight (stacked experts as [E, ...], the layout
                         of mm's gradient outputs), from loss.backward()
  tokens.bin             uint16 token stream for the AdamW steps (mm-run train's windows: step s reads
                         windows (s-1)*B .. s*B-1 of T+1 tokens starting at w*T)
  adamw.json             hyper-parameters and the loss of each step
  adamw.safetensors      weights after the steps of torch.optim.AdamW with clip_grad_norm_
"""
import argparse
import json
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F
from transformers import MiniMaxConfig, MiniMaxForCausalLM

CONFIG = {
    "architectures": ["MiniMaxForCausalLM"],
    "model_type": "minimax",
    "vocab_size": 96,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "layer_types": ["linear_attention", "full_attention", "linear_attention", "full_attention"],
    "num_local_experts": 4,
    "num_experts_per_tok": 2,
    "block_size": 16,
    "rms_norm_eps": 1e-05,
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
    "linear_attn_alpha_factor": 1.3,
    "linear_attn_beta_factor": 0.9,
    "full_attn_alpha_factor": 1.1,
    "full_attn_beta_factor": 1.2,
    "mlp_alpha_factor": 0.8,
    "mlp_beta_factor": 1.05,
    "tie_word_embeddings": False,
    "hidden_act": "silu",
    "max_position_embeddings": 4096,
}
BATCH, SEQ = 2, 40  # SEQ spans 2.5 lightning blocks: full and partial blocks both run

# --preset d64: head_dim 64 and bf16-sized shapes, so that the GPU's fast paths (chunk-parallel
# lightning, tensor-core attention and MoE) are the ones checked; T = 200 is ragged against their
# 64-row tiles and spans 3+ lightning blocks.
D64 = dict(CONFIG, vocab_size=256, hidden_size=128, intermediate_size=128, num_hidden_layers=2,
           num_attention_heads=2, num_key_value_heads=1, head_dim=64,
           layer_types=["linear_attention", "full_attention"], block_size=64)
# --preset *-dense: every token uses every expert (top-k = E), so the bf16 comparison is free of
# routing flips (a near-tie top-k choice that bf16 rounding decides differently moves a token's whole
# contribution between experts; with top-2 of 4 that, not the kernels, bounds bf16's agreement).
PRESETS = {"tiny": (CONFIG, BATCH, SEQ), "d64": (D64, 2, 200),
           "tiny-dense": (dict(CONFIG, num_experts_per_tok=4), BATCH, SEQ),
           "d64-dense": (dict(D64, num_experts_per_tok=4), 2, 200)}
ADAMW = {"lr": 3e-3, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "max_norm": 0.5,
         "steps": 3, "batch": 2, "seq": 24}


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype=np.float32)
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes())
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def to_mm(state, stacked):
    """transformers state dict -> mm names. stacked=True keeps experts as [E, ...] under the "{e}" name."""
    out = {}
    I = next(iter(v for k, v in state.items() if ".mlp.experts.gate_up_proj" in k)).shape[1] // 2
    for k, v in state.items():
        v = v.detach().float().numpy()
        if ".mlp.experts.gate_up_proj" in k:
            p = k.replace("mlp.experts.gate_up_proj", "block_sparse_moe.experts.")
            gate, up = v[:, :I, :], v[:, I:, :]  # chunk(2): gate rows first
            parts = {"w1.weight": gate, "w3.weight": up}
        elif ".mlp.experts.down_proj" in k:
            p = k.replace("mlp.experts.down_proj", "block_sparse_moe.experts.")
            parts = {"w2.weight": v}
        else:
            out[k.replace(".mlp.gate.", ".block_sparse_moe.gate.")] = v
            continue
        for suffix, a in parts.items():
            if stacked:
                out[p + "{e}." + suffix] = a
            else:
                for e in range(a.shape[0]):
                    out[p + f"{e}." + suffix] = a[e]
    return out


def init_weights(model, gen):
    """N(0, 1/fan_in) projections, N(0, 1) embeddings, 1 + 0.1 N(0, 1) norms: activations stay O(1)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(p.shape[-1]))


def loss_of(model, ids, labels):
    logits = model(input_ids=ids).logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--bf16-weights", action="store_true",
                    help="round every initial weight to bf16 (the reference stays fp32): the golden "
                         "for dtype=bf16 artifacts, whose weights are those same bf16 values")
    args = ap.parse_args()
    config, batch, seq = PRESETS[args.preset]
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    cfg = MiniMaxConfig(**{k: v for k, v in config.items() if k != "architectures"})
    cfg._attn_implementation = "eager"
    model = MiniMaxForCausalLM(cfg).float()
    model.eval()  # no dropout, no router jitter; gradients flow the same
    init_weights(model, gen)
    if args.bf16_weights:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.bfloat16().float())
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    write_safetensors(os.path.join(args.out, "weights.safetensors"), to_mm(dict(model.named_parameters()), stacked=False))

    V = config["vocab_size"]
    ids = torch.randint(0, V, (batch, seq), generator=gen)
    labels = torch.randint(0, V, (batch, seq), generator=gen)
    labels[0, 3] = -100
    np.save(os.path.join(args.out, "ids.npy"), ids.numpy().astype(np.int32))
    np.save(os.path.join(args.out, "labels.npy"), labels.numpy().astype(np.int32))

    loss = loss_of(model, ids, labels)
    model.zero_grad()
    loss.backward()
    grads = {k: p.grad for k, p in model.named_parameters()}
    golden = {"loss": np.array(loss.item(), dtype=np.float32)}
    for k, v in to_mm(grads, stacked=True).items():
        golden["grad:" + k] = v
    write_safetensors(os.path.join(args.out, "grads.safetensors"), golden)
    print(f"loss {loss.item():.9g}; {len(golden) - 1} gradients")

    # AdamW: the windows mm-run train reads (see the module docstring).
    a = ADAMW
    B, T = a["batch"], a["seq"]
    tokens = torch.randint(0, V, (a["steps"] * B * T + 1,), generator=gen).numpy().astype(np.uint16)
    tokens.tofile(os.path.join(args.out, "tokens.bin"))
    opt = torch.optim.AdamW(model.parameters(), lr=a["lr"], betas=(a["beta1"], a["beta2"]), eps=a["eps"],
                            weight_decay=a["weight_decay"])
    losses = []
    for step in range(1, a["steps"] + 1):
        rows = []
        for b in range(B):
            off = ((step - 1) * B + b) * T
            rows.append(tokens[off:off + T + 1].astype(np.int64))
        batch = torch.tensor(np.stack(rows))
        opt.zero_grad()
        loss = loss_of(model, batch[:, :-1], batch[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), a["max_norm"])
        opt.step()
        losses.append(loss.item())
    with open(os.path.join(args.out, "adamw.json"), "w") as f:
        json.dump({**a, "losses": losses}, f, indent=2)
    write_safetensors(os.path.join(args.out, "adamw.safetensors"), to_mm(dict(model.named_parameters()), stacked=False))
    print("adamw losses", losses)


if __name__ == "__main__":
    main()
