#!/usr/bin/env python3
"""Golden data from Hugging Face transformers for the mm parity test (test/golden/run_parity.py).

    /work/torchenv/bin/python tools/make_golden.py [--out test/golden] [--only NAME ...]

Needs torch + transformers (MiniMaxForCausalLM); CI does not: it only reads what this writes.

For each configuration in GOLDENS it builds a randomly initialised MiniMaxForCausalLM, runs it in
fp32 on CPU (eager attention, eager experts) and writes test/golden/<name>/:

    config.json                     as transformers saves it (or rewritten in the original
                                    MiniMax-Text-01 schema, `schema: original`)
    model.safetensors               or model-0000k-of-0000n.safetensors + model.safetensors.index.json
    case_<b>x<t>.ids.npy            int64 token ids [B, T]
    case_<b>x<t>.logits.npy         fp32 logits [B, T, V] from transformers
    generate.ids.npy                int64 prompt [B, T0]
    generate.out.npy                int64 greedy continuation [B, N] from model.generate (KV cache /
                                    lightning recurrence), checked equal to a no-cache greedy loop
    meta.json                       versions, seed, what the golden covers, the cases, margins

Weights stored as bf16/f16 are rounded first and the logits computed in fp32 from the rounded
weights, which is exactly what mm computes (it widens to f32 on load). Initialisation is wider
than transformers' 0.02 so that logits are far from uniform; a seed is kept only if every
position's top-2 logit gap is >= MIN_LOGIT_GAP and every router's k-th/(k+1)-th gap
(in router logits) is >= MIN_ROUTER_GAP, so that argmax and routing are not decided by rounding.

Expert naming: save_pretrained writes per-expert `block_sparse_moe.experts.{e}.w1/w2/w3.weight`;
the fused layouts are written from the in-memory state_dict (`mlp.experts.gate_up_proj`
[E, 2I, H] with gate rows first, `mlp.experts.down_proj` [E, H, I]), optionally renamed to the
`block_sparse_moe` prefix; `per_expert_mlp` renames save_pretrained's names to the `mlp` prefix.
The math is the same in every layout.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import MiniMaxConfig, MiniMaxForCausalLM

MIN_LOGIT_GAP = 2e-3
MIN_ROUTER_GAP = 1e-3
GEN_TOKENS = 10


def layer_types(spec):
    return ["full_attention" if c == "F" else "linear_attention" for c in spec]


# Each golden: transformers config kwargs plus how to store it. Together they cover head counts
# 3/5/6 (non-power-of-two), GQA ratios 1, 2, 3, 5, softmax layers first/middle/last, top-k 1-4,
# non-unit alpha/beta, block sizes 4/8/12/16, f32/bf16/f16 files, one sharded checkpoint, both
# expert naming schemes with both prefixes, both config schemas and tied embeddings.
GOLDENS = [
    dict(name="fused_mlp_f32", seed=1, std=0.25,
         dtype="float32", layout="fused_mlp", schema="current",
         config=dict(vocab_size=96, hidden_size=40, intermediate_size=24, num_hidden_layers=3,
                     num_attention_heads=6, num_key_value_heads=2, head_dim=8,
                     layer_types=layer_types("FLL"), num_local_experts=4, num_experts_per_tok=1,
                     block_size=8, rms_norm_eps=1e-6,
                     rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                     linear_attn_alpha_factor=1.3, linear_attn_beta_factor=0.9,
                     full_attn_alpha_factor=0.8, full_attn_beta_factor=1.1,
                     mlp_alpha_factor=1.2, mlp_beta_factor=0.7)),
    dict(name="per_expert_bf16_tied", seed=2, std=0.25,
         dtype="bfloat16", layout="per_expert", schema="current",
         config=dict(vocab_size=112, hidden_size=48, intermediate_size=32, num_hidden_layers=3,
                     num_attention_heads=3, num_key_value_heads=3, head_dim=16,
                     layer_types=layer_types("LLF"), num_local_experts=6, num_experts_per_tok=3,
                     block_size=16, tie_word_embeddings=True,
                     linear_attn_alpha_factor=0.9, linear_attn_beta_factor=1.25,
                     full_attn_alpha_factor=1.1, full_attn_beta_factor=0.95,
                     mlp_alpha_factor=1.05, mlp_beta_factor=0.85)),
    dict(name="sharded_f16", seed=3, std=0.25, shard="100KB",
         dtype="float16", layout="per_expert", schema="current",
         config=dict(vocab_size=80, hidden_size=32, intermediate_size=40, num_hidden_layers=4,
                     num_attention_heads=6, num_key_value_heads=3, head_dim=8,
                     layer_types=layer_types("LFLF"), num_local_experts=8, num_experts_per_tok=2,
                     block_size=12,
                     rope_parameters={"rope_type": "default", "rope_theta": 50000.0},
                     linear_attn_alpha_factor=1.5, linear_attn_beta_factor=0.6,
                     full_attn_alpha_factor=1.2, full_attn_beta_factor=0.8,
                     mlp_alpha_factor=0.9, mlp_beta_factor=1.3)),
    dict(name="original_schema_fused_bsm", seed=4, std=0.25,
         dtype="float32", layout="fused_block_sparse_moe", schema="original",
         config=dict(vocab_size=64, hidden_size=32, intermediate_size=24, num_hidden_layers=4,
                     num_attention_heads=5, num_key_value_heads=1, head_dim=8,
                     layer_types=layer_types("LFLL"), num_local_experts=5, num_experts_per_tok=4,
                     block_size=8,
                     rope_parameters={"rope_type": "default", "rope_theta": 10000000.0},
                     linear_attn_alpha_factor=3.5566, linear_attn_beta_factor=1.0,
                     full_attn_alpha_factor=3.5566, full_attn_beta_factor=1.0,
                     mlp_alpha_factor=3.5566, mlp_beta_factor=1.0)),
    dict(name="per_expert_mlp_f32", seed=5, std=0.25,
         dtype="float32", layout="per_expert_mlp", schema="current",
         config=dict(vocab_size=72, hidden_size=24, intermediate_size=16, num_hidden_layers=2,
                     num_attention_heads=2, num_key_value_heads=1, head_dim=12,
                     layer_types=layer_types("FL"), num_local_experts=3, num_experts_per_tok=2,
                     block_size=4,
                     linear_attn_alpha_factor=1.1, linear_attn_beta_factor=1.4,
                     full_attn_alpha_factor=0.7, full_attn_beta_factor=1.6,
                     mlp_alpha_factor=1.3, mlp_beta_factor=0.75)),
]

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def build_model(g, seed):
    torch.manual_seed(seed)
    config = MiniMaxConfig(**g["config"], initializer_range=g["std"])
    try:
        model = MiniMaxForCausalLM._from_config(config, attn_implementation="eager",
                                                experts_implementation="eager")
    except (TypeError, ValueError):
        model = MiniMaxForCausalLM._from_config(config, attn_implementation="eager")
    model.eval()
    gen = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:  # RMSNorm gains: not all ones, so a missing norm weight shows
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith("mlp.gate.weight"):
                p.mul_(2.0)  # routing weights far from uniform
            elif "embed_tokens" in name:
                p.mul_(4.0)  # embeddings of norm ~1 per channel
            # Every other matrix keeps std, about 1/sqrt(fan_in) at these widths.
        dtype = TORCH_DTYPES[g["dtype"]]
        if dtype != torch.float32:
            for p in model.parameters():
                p.copy_(p.to(dtype).to(torch.float32))
    return model


def router_gaps(model, ids):
    """Smallest gap between the k-th and (k+1)-th router logit over all tokens and layers."""
    gaps = []
    k = model.config.num_experts_per_tok
    hooks = []

    def hook(_module, _inputs, output):
        # Logits, not probabilities: two tiny probabilities can be close while their order
        # is still clear.
        top = torch.topk(output[0].float(), min(k + 1, output[0].shape[-1]), dim=-1).values
        if top.shape[-1] > k:
            gaps.append(float((top[:, k - 1] - top[:, k]).min()))

    for layer in model.model.layers:
        hooks.append(layer.mlp.gate.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(ids)
    finally:
        for h in hooks:
            h.remove()
    return min(gaps) if gaps else float("inf")


def logit_gap(logits):
    top2 = torch.topk(logits, 2, dim=-1).values
    return float((top2[..., 0] - top2[..., 1]).min())


def cases_for(g):
    bs = g["config"]["block_size"]
    # (B, T): length 1, block_size-1, block_size+1, more than two blocks.
    return [(1, 1), (2, bs - 1), (1, bs + 1), (2, 2 * bs + 5)]


def evaluate(model, g, seed):
    """Returns (cases, generation, margins) or None when a margin is too thin."""
    V = g["config"]["vocab_size"]
    rng = np.random.default_rng(seed)
    cases, min_logit, min_router = [], float("inf"), float("inf")
    for b, t in cases_for(g):
        ids = torch.from_numpy(rng.integers(0, V, (b, t)).astype(np.int64))
        with torch.no_grad():
            logits = model(ids).logits.float()
        min_logit = min(min_logit, logit_gap(logits))
        min_router = min(min_router, router_gaps(model, ids))
        cases.append((ids.numpy(), logits.numpy()))

    prompt = torch.from_numpy(rng.integers(0, V, (2, 6)).astype(np.int64))
    with torch.no_grad():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt),
                             max_new_tokens=GEN_TOKENS, min_new_tokens=GEN_TOKENS,
                             do_sample=False, eos_token_id=None, pad_token_id=V, use_cache=True)
    new = out[:, prompt.shape[1]:]
    # The same continuation without a cache (full forward each step), as mm-run computes it.
    seq = prompt
    for _ in range(GEN_TOKENS):
        with torch.no_grad():
            last = model(seq).logits[:, -1].float()
        min_logit = min(min_logit, logit_gap(last))
        seq = torch.cat([seq, last.argmax(-1, keepdim=True)], dim=1)
    min_router = min(min_router, router_gaps(model, seq))
    if not torch.equal(seq[:, prompt.shape[1]:], new):
        print(f"  seed {seed}: generate() and the no-cache greedy loop disagree", file=sys.stderr)
        return None
    if min_logit < MIN_LOGIT_GAP or min_router < MIN_ROUTER_GAP:
        print(f"  seed {seed}: margins too thin (logit {min_logit:.1e}, router {min_router:.1e})",
              file=sys.stderr)
        return None
    return cases, (prompt.numpy(), new.numpy()), (min_logit, min_router)


def to_original_schema(cfg):
    """Rewrites a transformers config.json in the original MiniMax-Text-01 field names."""
    out = {}
    renames = {
        "linear_attn_alpha_factor": "layernorm_linear_attention_alpha",
        "linear_attn_beta_factor": "layernorm_linear_attention_beta",
        "full_attn_alpha_factor": "layernorm_full_attention_alpha",
        "full_attn_beta_factor": "layernorm_full_attention_beta",
        "mlp_alpha_factor": "layernorm_mlp_alpha",
        "mlp_beta_factor": "layernorm_mlp_beta",
    }
    for key, value in cfg.items():
        if key == "layer_types":
            out["attn_type_list"] = [1 if t == "full_attention" else 0 for t in value]
        elif key == "rope_parameters":
            out["rope_theta"] = value["rope_theta"]
        elif key in renames:
            out[renames[key]] = value
        else:
            out[key] = value
    # transformers rotates every channel of the head; the original schema says so explicitly.
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    out["rotary_dim"] = head_dim
    out["postnorm"] = True
    out["architectures"] = ["MiniMaxText01ForCausalLM"]
    return out


def save_checkpoint(model, g, folder):
    dtype = TORCH_DTYPES[g["dtype"]]
    layout = g["layout"]
    if layout in ("per_expert", "per_expert_mlp"):
        model.to(dtype)
        model.save_pretrained(folder, max_shard_size=g.get("shard", "50GB"))
        model.to(torch.float32)
        if layout == "per_expert_mlp":
            from safetensors.torch import load_file
            path = os.path.join(folder, "model.safetensors")
            tensors = load_file(path)
            save_file({k.replace(".block_sparse_moe.", ".mlp."): v for k, v in tensors.items()},
                      path, metadata={"format": "pt"})
    else:
        model.config.dtype = g["dtype"]
        model.config.save_pretrained(folder)
        prefix = ".mlp." if layout == "fused_mlp" else ".block_sparse_moe."
        tensors = {}
        for name, t in model.state_dict().items():
            if name == "lm_head.weight" and model.config.tie_word_embeddings:
                continue
            tensors[name.replace(".mlp.", prefix)] = t.detach().to(dtype).contiguous()
        save_file(tensors, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    gen_cfg = os.path.join(folder, "generation_config.json")
    if os.path.exists(gen_cfg):
        os.remove(gen_cfg)
    if g["schema"] == "original":
        path = os.path.join(folder, "config.json")
        with open(path) as f:
            cfg = json.load(f)
        with open(path, "w") as f:
            json.dump(to_original_schema(cfg), f, indent=2, sort_keys=True)
            f.write("\n")


def make(g, out_dir):
    folder = os.path.join(out_dir, g["name"])
    for attempt in range(50):
        seed = g["seed"] * 1000 + attempt
        model = build_model(g, seed)
        result = evaluate(model, g, seed)
        if result is not None:
            break
    else:
        sys.exit(f"{g['name']}: no seed gave clear argmax and routing margins")
    cases, (prompt, new), (min_logit, min_router) = result
    if os.path.exists(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    save_checkpoint(model, g, folder)
    meta_cases = []
    for ids, logits in cases:
        stem = f"case_{ids.shape[0]}x{ids.shape[1]}"
        np.save(os.path.join(folder, stem + ".ids.npy"), ids)
        np.save(os.path.join(folder, stem + ".logits.npy"), logits.astype(np.float32))
        meta_cases.append({"ids": stem + ".ids.npy", "logits": stem + ".logits.npy",
                           "batch": int(ids.shape[0]), "seq": int(ids.shape[1])})
    np.save(os.path.join(folder, "generate.ids.npy"), prompt)
    np.save(os.path.join(folder, "generate.out.npy"), new)
    meta = {
        "name": g["name"],
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "model_class": "MiniMaxForCausalLM",
        "attn_implementation": "eager",
        "seed": seed,
        "init_std": g["std"],
        "weights_dtype": g["dtype"],
        "expert_layout": g["layout"],
        "config_schema": g["schema"],
        "sharded": "shard" in g,
        "logits_dtype": "float32",
        "cases": meta_cases,
        "generate": {"ids": "generate.ids.npy", "out": "generate.out.npy", "new_tokens": GEN_TOKENS,
                     "how": "model.generate(do_sample=False, use_cache=True); equal to a no-cache "
                            "greedy loop"},
        "min_top2_logit_gap": min_logit,
        "min_router_topk_gap": min_router,
    }
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
    print(f"{g['name']:<28} seed {seed:<6} logit gap {min_logit:.2e}  router gap {min_router:.2e}  "
          f"{size / 1024:.0f} KiB")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                  "test", "golden"))
    ap.add_argument("--only", nargs="*", help="names of the goldens to (re)make")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for g in GOLDENS:
        if args.only and g["name"] not in args.only:
            continue
        make(g, args.out)


if __name__ == "__main__":
    main()
