#!/usr/bin/env python3
"""Deterministic random weights for a MiniMax-style config, written as safetensors.

    gen_weights.py --config models/tiny/config.json -o tiny.safetensors [--seed 0] [--dtype f32|f16|bf16]

Tensor names follow Hugging Face `MiniMaxForCausalLM`. Scales keep activations O(1):
projections ~ N(0, 1/fan_in), embeddings ~ N(0, 1), norm weights 1 + 0.1*N(0, 1).
The safetensors file is written by hand (stdlib + numpy only).
"""
import argparse
import json
import struct
import sys

import numpy as np

# safetensors dtype tag for each --dtype choice.
DTYPE_TAGS = {"f32": "F32", "f16": "F16", "bf16": "BF16"}


def layer_types(cfg):
    """Per-layer 'linear_attention' / 'full_attention', from the current or the legacy key."""
    if "layer_types" in cfg:
        return list(cfg["layer_types"])
    if "attn_type_list" in cfg:  # legacy: 0 = lightning, 1 = softmax
        return ["full_attention" if t else "linear_attention" for t in cfg["attn_type_list"]]
    raise ValueError("config has neither layer_types nor attn_type_list")


def make_weights(cfg, seed=0):
    """Returns {name: float32 array}. Draws happen in a fixed model order, so a seed fixes every tensor."""
    rng = np.random.default_rng(seed)
    V, Hd, I = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"]
    H = cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads", H)
    D = cfg.get("head_dim") or Hd // H
    E = cfg["num_local_experts"]
    types = layer_types(cfg)
    if len(types) != cfg["num_hidden_layers"]:
        raise ValueError(f"{len(types)} layer types for {cfg['num_hidden_layers']} layers")

    def proj(out_dim, in_dim):  # nn.Linear layout [out, in]
        return rng.standard_normal((out_dim, in_dim)) / np.sqrt(in_dim)

    def norm(n):
        return 1.0 + 0.1 * rng.standard_normal(n)

    w = {"model.embed_tokens.weight": rng.standard_normal((V, Hd))}
    for i, t in enumerate(types):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm(Hd)
        w[p + "post_attention_layernorm.weight"] = norm(Hd)
        a = p + "self_attn."
        if t == "linear_attention":
            w[a + "qkv_proj.weight"] = proj(3 * H * D, Hd)
            w[a + "output_gate.weight"] = proj(H * D, Hd)
            w[a + "out_proj.weight"] = proj(Hd, H * D)
            w[a + "norm.weight"] = norm(H * D)
        elif t == "full_attention":
            w[a + "q_proj.weight"] = proj(H * D, Hd)
            w[a + "k_proj.weight"] = proj(Hkv * D, Hd)
            w[a + "v_proj.weight"] = proj(Hkv * D, Hd)
            w[a + "o_proj.weight"] = proj(Hd, H * D)
        else:
            raise ValueError(f"layer {i}: unknown layer type {t!r}")
        m = p + "block_sparse_moe."
        w[m + "gate.weight"] = proj(E, Hd)
        for e in range(E):
            w[m + f"experts.{e}.w1.weight"] = proj(I, Hd)
            w[m + f"experts.{e}.w2.weight"] = proj(Hd, I)
            w[m + f"experts.{e}.w3.weight"] = proj(I, Hd)
    w["model.norm.weight"] = norm(Hd)
    if not cfg.get("tie_word_embeddings", False):
        w["lm_head.weight"] = proj(V, Hd)
    return {k: v.astype(np.float32) for k, v in w.items()}


def f32_to_bf16_bits(x):
    """float32 -> bf16 bit patterns (uint16), round to nearest even on the dropped 16 bits."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    # NaN must stay NaN (rounding could carry its payload into the exponent): force a quiet NaN.
    rounded = np.where(np.isnan(x), (u >> 16) | 0x40, rounded)
    return rounded.astype(np.uint16)


def encode(x, dtype):
    """Raw little-endian bytes of x stored as `dtype` ('f32' | 'f16' | 'bf16')."""
    if dtype == "f32":
        return np.ascontiguousarray(x, dtype="<f4").tobytes()
    if dtype == "f16":
        return np.ascontiguousarray(x, dtype="<f2").tobytes()
    if dtype == "bf16":
        return f32_to_bf16_bits(x).astype("<u2").tobytes()
    raise ValueError(f"unknown dtype {dtype!r}")


def write_safetensors(path, tensors, dtype="f32"):
    """Writes {name: array} to `path`: u64 LE header length, JSON header, then the data in name order."""
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        raw = encode(tensors[name], dtype)
        header[name] = {"dtype": DTYPE_TAGS[dtype], "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * (-len(hbytes) % 8)  # pad with spaces so the data starts 8-byte aligned (as the reference writer does)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for c in chunks:
            f.write(c)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="config.json (HF MiniMax schema)")
    ap.add_argument("-o", "--output", required=True, help="output .safetensors path")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=sorted(DTYPE_TAGS), default="f32")
    args = ap.parse_args(argv)
    try:
        with open(args.config) as f:
            cfg = json.load(f)
        weights = make_weights(cfg, args.seed)
        write_safetensors(args.output, weights, args.dtype)
    except KeyError as e:
        print(f"gen_weights: error: config lacks key {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"gen_weights: error: {e}", file=sys.stderr)
        return 1
    n = sum(v.size for v in weights.values())
    print(f"wrote {args.output}: {len(weights)} tensors, {n} parameters, {args.dtype}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
