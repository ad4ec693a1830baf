#!/usr/bin/env python3
"""Independent float64 NumPy reference of a MiniMax hybrid lightning/softmax-attention MoE model.

    mm_reference.py --config C --weights W --input-ids ids.npy [--dump-logits out.npy] [--generate N]

It is the oracle for the compiler + runtime, so it is written for obviousness, not speed: the
lightning layer is the plain per-token recurrence (not the block-wise algorithm the runtime uses),
every expert is evaluated densely, and everything is float64. Semantics: /work/shared/DESIGN.md,
"Semantics: a MiniMax decoder layer" (HF transformers `MiniMaxForCausalLM`).
"""
import argparse
import json
import sys

import numpy as np

# ---------------------------------------------------------------------------------------------
# safetensors reader (header parsed by hand; any float dtype is widened to float64)


def _bf16_to_f32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)


_DECODERS = {
    "F64": lambda b: b.view("<f8"),
    "F32": lambda b: b.view("<f4"),
    "F16": lambda b: b.view("<f2"),
    "BF16": lambda b: _bf16_to_f32(b.view("<u2")),
    "I64": lambda b: b.view("<i8"),
    "I32": lambda b: b.view("<i4"),
}


def read_safetensors(path, widen=True):
    """{name: array}; float tensors become float64 when `widen`, else keep their stored precision."""
    data = np.fromfile(path, dtype=np.uint8)
    if data.size < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    hlen = int(data[:8].view("<u8")[0])
    if 8 + hlen > data.size:
        raise ValueError(f"{path}: header length {hlen} exceeds file size {data.size}")
    header = json.loads(data[8:8 + hlen].tobytes().decode("utf-8"))
    body = data[8 + hlen:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        if info["dtype"] not in _DECODERS:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {info['dtype']}")
        arr = _DECODERS[info["dtype"]](body[begin:end].copy()).reshape(info["shape"])
        if widen and arr.dtype.kind == "f":
            arr = arr.astype(np.float64)
        out[name] = arr
    return out


# ---------------------------------------------------------------------------------------------
# config (current HF names, with the legacy MiniMax-Text-01 names as fallbacks)


def load_config(path_or_dict):
    cfg = path_or_dict
    if not isinstance(cfg, dict):
        with open(cfg) as f:
            cfg = json.load(f)
    c = {}
    c["V"], c["Hd"], c["I"] = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"]
    c["L"] = cfg["num_hidden_layers"]
    c["H"] = cfg["num_attention_heads"]
    c["Hkv"] = cfg.get("num_key_value_heads") or c["H"]
    c["D"] = cfg.get("head_dim") or c["Hd"] // c["H"]
    c["E"], c["K"] = cfg["num_local_experts"], cfg["num_experts_per_tok"]
    c["eps"] = cfg.get("rms_norm_eps", 1e-6)
    c["tie"] = cfg.get("tie_word_embeddings", False)
    c["block_size"] = cfg.get("block_size", 256)

    if "layer_types" in cfg:
        c["types"] = list(cfg["layer_types"])
    else:  # legacy: 0 = lightning, 1 = softmax
        c["types"] = ["full_attention" if t else "linear_attention" for t in cfg["attn_type_list"]]
    if len(c["types"]) != c["L"]:
        raise ValueError(f"{len(c['types'])} layer types for {c['L']} layers")

    rope = cfg.get("rope_parameters") or {}
    c["theta"] = float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0)))
    if cfg.get("rotary_dim") is not None:
        c["R"] = int(cfg["rotary_dim"])
    else:
        prf = cfg.get("partial_rotary_factor", rope.get("partial_rotary_factor"))
        c["R"] = int(c["D"] * prf) if prf is not None else c["D"]
    if c["R"] % 2 or c["R"] > c["D"]:
        raise ValueError(f"rotary_dim {c['R']} must be even and <= head_dim {c['D']}")

    def factor(new, legacy):
        return float(cfg.get(new, cfg.get(legacy, 1.0)))

    c["alpha"] = {"linear_attention": factor("linear_attn_alpha_factor", "layernorm_linear_attention_alpha"),
                  "full_attention": factor("full_attn_alpha_factor", "layernorm_full_attention_alpha")}
    c["beta"] = {"linear_attention": factor("linear_attn_beta_factor", "layernorm_linear_attention_beta"),
                 "full_attention": factor("full_attn_beta_factor", "layernorm_full_attention_beta")}
    c["mlp_alpha"] = factor("mlp_alpha_factor", "layernorm_mlp_alpha")
    c["mlp_beta"] = factor("mlp_beta_factor", "layernorm_mlp_beta")
    return c


# ---------------------------------------------------------------------------------------------
# building blocks (all float64)


def silu(x):
    return x / (1.0 + np.exp(-x))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def lightning_decay(H, layer, num_layers):
    """Per-head decay rate s_h (DESIGN.md)."""
    base = 1.0 / 2.0 ** (8.0 / H)
    return np.array([base ** (h + 1) for h in range(H)]) * (1.0 - layer / (num_layers - 1 + 1e-5) + 1e-5)


def lightning_recurrence(q, k, v, s):
    """q,k,v [B,T,H,D], s [H] -> o [B,T,H,D] via KV_t = exp(-s) KV_{t-1} + k_tᵀ v_t, o_t = q_t KV_t."""
    B, T, H, D = q.shape
    decay = np.exp(-s)[None, :, None, None]
    kv = np.zeros((B, H, D, v.shape[-1]))
    o = np.empty(q.shape[:3] + (v.shape[-1],))
    for t in range(T):
        kv = decay * kv + np.einsum("bhd,bhe->bhde", k[:, t], v[:, t])
        o[:, t] = np.einsum("bhd,bhde->bhe", q[:, t], kv)
    return o


def rope(x, R, theta):
    """NeoX rotate-half on channels [0,R) of each head; x [B,T,H,D], positions 0..T-1."""
    if R == 0:
        return x
    T, half = x.shape[1], R // 2
    inv_freq = theta ** (-np.arange(half) * 2.0 / R)
    ang = np.arange(T)[:, None] * inv_freq[None, :]          # [T, R/2]
    cos, sin = np.cos(ang)[None, :, None, :], np.sin(ang)[None, :, None, :]
    x1, x2 = x[..., :half], x[..., half:R]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin, x[..., R:]], axis=-1)


def causal_softmax_attention(q, k, v, scale):
    """q [B,T,H,D], k/v [B,T,Hkv,D]; query head h uses kv head h // (H/Hkv)."""
    rep = q.shape[2] // k.shape[2]
    k, v = np.repeat(k, rep, axis=2), np.repeat(v, rep, axis=2)
    scores = np.einsum("bthd,bshd->bhts", q, k) * scale
    T = q.shape[1]
    scores = np.where(np.tril(np.ones((T, T), dtype=bool)), scores, -np.inf)
    return np.einsum("bhts,bshd->bthd", softmax(scores, axis=-1), v)


def topk_weights(p, k):
    """Dense [N,E] weights: top-k of p per row (ties: lower expert index), renormalised to sum 1."""
    order = np.argsort(-p, axis=-1, kind="stable")[:, :k]
    w = np.zeros_like(p)
    np.put_along_axis(w, order, np.take_along_axis(p, order, axis=-1), axis=-1)
    return w / w.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# the model


class Reference:
    def __init__(self, config, weights):
        self.c = load_config(config)
        self.w = read_safetensors(weights) if isinstance(weights, str) else \
            {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
        self.route_margin = None   # set by forward()

    def _lightning(self, x, i):
        c, p = self.c, f"model.layers.{i}.self_attn."
        B, T, _ = x.shape
        H, D = c["H"], c["D"]
        qkv = silu(x @ self.w[p + "qkv_proj.weight"].T).reshape(B, T, H, 3 * D)
        q, k, v = qkv[..., :D], qkv[..., D:2 * D], qkv[..., 2 * D:]
        o = lightning_recurrence(q, k, v, lightning_decay(H, i, c["L"])).reshape(B, T, H * D)
        o = rms_norm(o, self.w[p + "norm.weight"], 1e-6)
        o = o * sigmoid(x @ self.w[p + "output_gate.weight"].T)
        return o @ self.w[p + "out_proj.weight"].T

    def _softmax_attn(self, x, i):
        c, p = self.c, f"model.layers.{i}.self_attn."
        B, T, _ = x.shape
        q = (x @ self.w[p + "q_proj.weight"].T).reshape(B, T, c["H"], c["D"])
        k = (x @ self.w[p + "k_proj.weight"].T).reshape(B, T, c["Hkv"], c["D"])
        v = (x @ self.w[p + "v_proj.weight"].T).reshape(B, T, c["Hkv"], c["D"])
        q, k = rope(q, c["R"], c["theta"]), rope(k, c["R"], c["theta"])
        o = causal_softmax_attention(q, k, v, c["D"] ** -0.5).reshape(B, T, c["H"] * c["D"])
        return o @ self.w[p + "o_proj.weight"].T

    def _moe(self, x, i):
        c, p = self.c, f"model.layers.{i}.block_sparse_moe."
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        probs = softmax(x @ self.w[p + "gate.weight"].T)
        gates = topk_weights(probs, c["K"])   # [N,E]
        if self.route_margin is not None and c["K"] < c["E"]:   # how close to another choice
            top = np.sort(probs, axis=-1)[:, ::-1]
            margin = (top[:, c["K"] - 1] - top[:, c["K"]]).reshape(shape[:-1])
            self.route_margin = np.minimum(self.route_margin, margin)
        out = np.zeros_like(x)
        for e in range(c["E"]):
            ep = p + f"experts.{e}."
            y = (silu(x @ self.w[ep + "w1.weight"].T) * (x @ self.w[ep + "w3.weight"].T)) @ self.w[ep + "w2.weight"].T
            out += gates[:, e:e + 1] * y   # unselected experts have weight exactly 0
        return out.reshape(shape)

    def forward(self, ids):
        """ids [B,T] (or [T]) integer -> logits [B,T,V] float64."""
        c = self.c
        ids = np.asarray(ids)
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise ValueError(f"input ids must be an integer [B,T] array, got {ids.dtype} {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= c["V"]):
            raise ValueError(f"token id out of range [0,{c['V']})")
        x = self.w["model.embed_tokens.weight"][ids]
        # [B,T]: the smallest gap, over the MoE layers, between the k-th and (k+1)-th router
        # probability of each token (a lower-precision run may route such a token differently).
        self.route_margin = np.full(ids.shape, np.inf)
        for i, t in enumerate(c["types"]):
            p = f"model.layers.{i}."
            h = rms_norm(x, self.w[p + "input_layernorm.weight"], c["eps"])
            a = self._lightning(h, i) if t == "linear_attention" else self._softmax_attn(h, i)
            h = h * c["alpha"][t] + a * c["beta"][t]
            h = rms_norm(h, self.w[p + "post_attention_layernorm.weight"], c["eps"])
            x = h * c["mlp_alpha"] + self._moe(h, i) * c["mlp_beta"]
        x = rms_norm(x, self.w["model.norm.weight"], c["eps"])
        head = self.w["model.embed_tokens.weight"] if c["tie"] else self.w["lm_head.weight"]
        return x @ head.T

    def generate(self, ids, n):
        """Greedy continuation: returns the n new tokens [B,n] (full recompute each step: no cache to get wrong)."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim == 1:
            ids = ids[None]
        new = []
        for _ in range(n):
            nxt = np.argmax(self.forward(ids)[:, -1], axis=-1)
            new.append(nxt)
            ids = np.concatenate([ids, nxt[:, None]], axis=1)
        return np.stack(new, axis=1) if new else np.zeros((ids.shape[0], 0), dtype=np.int64)


def greedy_generate(config, weights, ids, n):
    return Reference(config, weights).generate(ids, n)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--weights", required=True, help=".safetensors file")
    ap.add_argument("--input-ids", required=True, help=".npy of int32/int64 ids, [B,T] or [T]")
    ap.add_argument("--dump-logits", help="write float64 logits [B,T,V] here (.npy)")
    ap.add_argument("--generate", type=int, default=0, metavar="N",
                    help="print N greedy tokens per sequence as 'generated[b]: t1 t2 ...'")
    args = ap.parse_args(argv)
    try:
        ref = Reference(args.config, args.weights)
        ids = np.load(args.input_ids)
        logits = ref.forward(ids)
        if args.dump_logits:
            np.save(args.dump_logits, logits)
        if args.generate:
            for b, row in enumerate(ref.generate(ids, args.generate)):
                print(f"generated[{b}]: " + " ".join(str(int(t)) for t in row))
    except (OSError, ValueError, KeyError) as e:
        print(f"mm_reference: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
