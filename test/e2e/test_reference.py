#!/usr/bin/env python3
"""Self-checks of the NumPy reference (mm_reference.py) and the weight writer (gen_weights.py).

    test_reference.py        # runs every test_* below; exits non-zero on any failure

These run without the C++ side. They check the reference against independent, slower formulations
(quadratic-form lightning attention, per-token loops, complex-number RoPE), and check properties
the model must have (causality, batch independence, legacy-config equivalence).
"""
import copy
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "tiny"))
import gen_weights  # noqa: E402
import mm_reference as mr  # noqa: E402

CONFIG = os.path.join(ROOT, "models", "tiny", "config.json")
with open(CONFIG) as f:
    TINY = json.load(f)
TMP = tempfile.mkdtemp(prefix="mm_ref_test_")


def tiny_model(cfg=None, seed=0):
    cfg = cfg or TINY
    return mr.Reference(cfg, gen_weights.make_weights(cfg, seed))


def close(a, b, tol, what):
    err = np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)
    assert err <= tol, f"{what}: max rel diff {err:.3e} > {tol:.0e}"


# --- lightning attention ----------------------------------------------------------------------


def lightning_quadratic(q, k, v, s):
    """o_t = Σ_{u≤t} exp(-s(t-u)) (q_t·k_u) v_u, summed explicitly."""
    B, T, H, _ = q.shape
    o = np.zeros(q.shape[:3] + (v.shape[-1],))
    for b in range(B):
        for h in range(H):
            for t in range(T):
                for u in range(t + 1):
                    o[b, t, h] += np.exp(-s[h] * (t - u)) * (q[b, t, h] @ k[b, u, h]) * v[b, u, h]
    return o


def lightning_blockwise(q, k, v, s, block):
    """Lightning Attention-2 as written in DESIGN.md, with local positions j 1-based inside a block:
    inter-block term (Q⊙exp(-s·j))·KV, state update KV ← exp(-s·m)KV + (K⊙exp(-s(m-j)))ᵀV.
    (0-based j in *both* terms is equivalent — the state just carries one extra decay step — but
    mixing the two conventions is wrong.)"""
    B, T, H, D = q.shape
    o = np.zeros(q.shape[:3] + (v.shape[-1],))
    for b in range(B):
        for h in range(H):
            kv = np.zeros((D, v.shape[-1]))
            for start in range(0, T, block):
                Q, K, V = q[b, start:start + block, h], k[b, start:start + block, h], v[b, start:start + block, h]
                m = Q.shape[0]
                j = np.arange(1, m + 1)
                diff = j[:, None] - j[None, :]
                Dm = np.where(diff >= 0, np.exp(-s[h] * np.maximum(diff, 0)), 0.0)
                o[b, start:start + m, h] = ((Q @ K.T) * Dm) @ V + (Q * np.exp(-s[h] * j)[:, None]) @ kv
                kv = np.exp(-s[h] * m) * kv + (K * np.exp(-s[h] * (m - j))[:, None]).T @ V
    return o


def test_lightning_recurrence_equals_quadratic_form():
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((2, 13, 3, 4)) for _ in range(3))
    s = mr.lightning_decay(3, 1, 4)
    close(mr.lightning_recurrence(q, k, v, s), lightning_quadratic(q, k, v, s), 1e-12, "recurrence vs quadratic")


def test_lightning_blockwise_formulas_match_recurrence():
    # Pins down the block algorithm the runtime implements, incl. a ragged last block.
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((1, 37, 4, 8)) for _ in range(3))
    s = mr.lightning_decay(4, 0, 4)
    ref = mr.lightning_recurrence(q, k, v, s)
    for block in (1, 5, 16, 64):
        close(lightning_blockwise(q, k, v, s, block), ref, 1e-12, f"blockwise(block={block})")


def test_lightning_decay_values():
    s = mr.lightning_decay(4, 0, 4)  # base 2^(-8/4) = 1/4
    close(s, np.array([0.25, 0.0625, 0.015625, 0.00390625]) * (1 + 1e-5), 1e-15, "decay layer 0")
    last = mr.lightning_decay(4, 3, 4)  # last layer: ratio ~ 1e-5 + 3e-5/(3+1e-5), nearly no decay
    close(last, 0.25 ** np.arange(1, 5) * (1 - 3 / (3 + 1e-5) + 1e-5), 1e-15, "decay last layer")


# --- softmax attention, RoPE, MoE -------------------------------------------------------------


def test_rope_matches_complex_rotation():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 9, 3, 16))
    R, theta = 8, 500.0
    out = mr.rope(x, R, theta)
    z = x[..., :4] + 1j * x[..., 4:8]  # NeoX pairs channel i with i + R/2
    ang = np.arange(9)[:, None] * theta ** (-np.arange(4) / 4.0)
    z = z * np.exp(1j * ang)[None, :, None, :]
    close(out[..., :4], z.real, 1e-13, "rope first half")
    close(out[..., 4:8], z.imag, 1e-13, "rope second half")
    assert np.array_equal(out[..., 8:], x[..., 8:]), "channels >= rotary_dim must pass through"
    assert np.array_equal(out[:, 0], x[:, 0]), "position 0 is the identity"


def test_softmax_attention_matches_loop():
    rng = np.random.default_rng(4)
    B, T, H, Hkv, D = 2, 6, 4, 2, 5
    q = rng.standard_normal((B, T, H, D))
    k, v = rng.standard_normal((B, T, Hkv, D)), rng.standard_normal((B, T, Hkv, D))
    out = mr.causal_softmax_attention(q, k, v, D ** -0.5)
    for b in range(B):
        for h in range(H):
            g = h // (H // Hkv)
            for t in range(T):
                sc = np.array([q[b, t, h] @ k[b, u, g] for u in range(t + 1)]) * D ** -0.5
                p = np.exp(sc - sc.max())
                p /= p.sum()
                close(out[b, t, h], sum(p[u] * v[b, u, g] for u in range(t + 1)), 1e-12, "attention")


def test_moe_matches_per_token_loop():
    m = tiny_model()
    c, w = m.c, m.w
    x = np.random.default_rng(5).standard_normal((2, 3, c["Hd"]))
    out = m._moe(x, 1)
    p = "model.layers.1.block_sparse_moe."
    for b in range(2):
        for t in range(3):
            xt = x[b, t]
            logits = w[p + "gate.weight"] @ xt
            pr = np.exp(logits - logits.max())
            pr /= pr.sum()
            top = sorted(range(c["E"]), key=lambda e: (-pr[e], e))[:c["K"]]
            acc = np.zeros(c["Hd"])
            for e in top:
                ep = p + f"experts.{e}."
                hidden = mr.silu(w[ep + "w1.weight"] @ xt) * (w[ep + "w3.weight"] @ xt)
                acc += pr[e] / sum(pr[f] for f in top) * (w[ep + "w2.weight"] @ hidden)
            close(out[b, t], acc, 1e-12, "moe")


def test_topk_ties_prefer_lower_index():
    w = mr.topk_weights(np.array([[0.1, 0.3, 0.3, 0.3]]), 2)
    assert np.array_equal(w, [[0.0, 0.5, 0.5, 0.0]]), w


# --- whole model ------------------------------------------------------------------------------


def test_causality():
    m = tiny_model()
    ids = np.random.default_rng(6).integers(0, 128, (2, 2 * TINY["block_size"] + 8))
    base = m.forward(ids)
    for pos in (5, ids.shape[1] - 1):
        ids2 = ids.copy()
        ids2[:, pos] = (ids2[:, pos] + 1) % 128
        out = m.forward(ids2)
        close(out[:, :pos], base[:, :pos], 1e-12, f"logits before changed position {pos}")
        assert np.abs(out[:, pos] - base[:, pos]).max() > 1e-3, "changing a token must change its own logits"


def test_batch_rows_are_independent():
    m = tiny_model()
    ids = np.random.default_rng(7).integers(0, 128, (2, 17))
    both = m.forward(ids)
    for b in range(2):
        close(both[b], m.forward(ids[b:b + 1])[0], 1e-12, f"batch row {b}")


def test_activations_are_order_one():
    logits = tiny_model().forward(np.random.default_rng(8).integers(0, 128, (2, 40)))
    assert 0.2 < logits.std() < 5.0 and np.isfinite(logits).all(), f"logit std {logits.std()}"


def test_legacy_config_names_give_same_logits():
    legacy = copy.deepcopy(TINY)
    legacy["attn_type_list"] = [int(t == "full_attention") for t in legacy.pop("layer_types")]
    legacy["rope_theta"] = legacy.pop("rope_parameters")["rope_theta"]
    for new, old in [("linear_attn", "layernorm_linear_attention"), ("full_attn", "layernorm_full_attention"),
                     ("mlp", "layernorm_mlp")]:
        for ab in ("alpha", "beta"):
            legacy[f"{old}_{ab}"] = legacy.pop(f"{new}_{ab}_factor")
    ids = np.random.default_rng(9).integers(0, 128, (1, 20))
    weights = gen_weights.make_weights(TINY, 0)
    assert np.array_equal(mr.Reference(TINY, weights).forward(ids), mr.Reference(legacy, weights).forward(ids))


def test_rotary_dim_is_honoured():
    ids = np.random.default_rng(10).integers(0, 128, (1, 12))
    weights = gen_weights.make_weights(TINY, 0)
    base = mr.Reference(TINY, weights).forward(ids)
    prf = copy.deepcopy(TINY)
    del prf["rotary_dim"]
    prf["partial_rotary_factor"] = 0.5
    assert np.array_equal(mr.Reference(prf, weights).forward(ids), base), "partial_rotary_factor 0.5 == rotary_dim 8"
    full = copy.deepcopy(TINY)
    full["rotary_dim"] = 16
    assert np.abs(mr.Reference(full, weights).forward(ids) - base).max() > 1e-6, "rotary_dim must matter"


def test_tied_embeddings():
    tied = dict(TINY, tie_word_embeddings=True)
    weights = gen_weights.make_weights(tied, 0)
    assert "lm_head.weight" not in weights
    m = mr.Reference(tied, weights)
    ids = np.array([[3, 4, 5]])
    logits = m.forward(ids)
    assert logits.shape == (1, 3, 128)


def test_greedy_generation_is_consistent():
    m = tiny_model()
    ids = np.random.default_rng(11).integers(0, 128, (2, 7))
    gen = m.generate(ids, 4)
    full = np.concatenate([ids, gen], axis=1)
    logits = m.forward(full)
    assert np.array_equal(np.argmax(logits[:, 6:-1], axis=-1), gen), "each token is the argmax after its prefix"


# --- safetensors ------------------------------------------------------------------------------


def test_safetensors_round_trip_f32_and_layout():
    w = gen_weights.make_weights(TINY, 0)
    path = os.path.join(TMP, "f32.safetensors")
    gen_weights.write_safetensors(path, w, "f32")
    back = mr.read_safetensors(path, widen=False)
    assert sorted(back) == sorted(w)
    for k in w:
        assert back[k].dtype == np.float32 and np.array_equal(back[k], w[k]), k
    raw = open(path, "rb").read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    assert (8 + hlen) % 8 == 0, "data section should start 8-byte aligned"
    header = json.loads(raw[8:8 + hlen])
    assert header.pop("__metadata__") == {"format": "pt"}
    names = list(header)
    assert names == sorted(names), "header lists tensors in sorted order"
    end = 0
    for n in names:  # data is contiguous in name order and fills the file exactly
        assert header[n]["data_offsets"][0] == end, n
        end = header[n]["data_offsets"][1]
    assert 8 + hlen + end == len(raw)


def test_weights_are_deterministic():
    a, b = os.path.join(TMP, "a.safetensors"), os.path.join(TMP, "b.safetensors")
    for path, seed in ((a, 0), (b, 0)):
        gen_weights.main(["--config", CONFIG, "-o", path, "--seed", str(seed)])
    assert open(a, "rb").read() == open(b, "rb").read(), "same seed, same bytes"
    w1 = gen_weights.make_weights(TINY, 1)
    assert not np.array_equal(w1["lm_head.weight"], gen_weights.make_weights(TINY, 0)["lm_head.weight"])


def test_bf16_and_f16_round_trip():
    one = 1.0
    # bf16 keeps 7 mantissa bits (ulp 2^-7 at 1): halfway cases round to even.
    cases = np.array([one, one + 2 ** -8, one + 3 * 2 ** -8, one + 2 ** -8 + 2 ** -20, -2.5, 0.0, np.inf, -np.inf,
                      3.0e38, np.nan], dtype=np.float32)
    want = np.array([one, one, one + 2 ** -6, one + 2 ** -7, -2.5, 0.0, np.inf, -np.inf], dtype=np.float32)
    path = os.path.join(TMP, "bf16.safetensors")
    rng = np.random.default_rng(12)
    rand = rng.standard_normal((33, 7)).astype(np.float32)
    gen_weights.write_safetensors(path, {"cases": cases, "rand": rand}, "bf16")
    back = mr.read_safetensors(path, widen=False)
    assert back["cases"].dtype == np.float32
    assert np.array_equal(back["cases"][:8], want), back["cases"]
    assert np.isfinite(back["cases"][8]) and abs(back["cases"][8] / 3.0e38 - 1) < 2 ** -8
    assert np.isnan(back["cases"][9]), "NaN must stay NaN"
    assert np.max(np.abs(back["rand"] - rand) / np.abs(rand)) <= 2 ** -8, "bf16 rounding error within half an ulp"
    path16 = os.path.join(TMP, "f16.safetensors")
    gen_weights.write_safetensors(path16, {"rand": rand}, "f16")
    assert np.array_equal(mr.read_safetensors(path16, widen=False)["rand"], rand.astype(np.float16))
    # The model still runs on bf16 weights and stays close to f32 (a smoke check for later bf16 runs).
    w = gen_weights.make_weights(TINY, 0)
    gen_weights.write_safetensors(path, w, "bf16")
    ids = np.array([[1, 2, 3, 4, 5]])
    lo, hi = mr.Reference(TINY, path).forward(ids), mr.Reference(TINY, w).forward(ids)
    assert np.linalg.norm(lo - hi) / np.linalg.norm(hi) < 0.05


def test_cli_dump_and_generate():
    wpath = os.path.join(TMP, "cli.safetensors")
    gen_weights.write_safetensors(wpath, gen_weights.make_weights(TINY, 0), "f32")
    ids = np.random.default_rng(13).integers(0, 128, (2, 9))
    m = mr.Reference(CONFIG, wpath)
    for dt in (np.int32, np.int64):
        ipath, opath = os.path.join(TMP, "ids.npy"), os.path.join(TMP, "out.npy")
        np.save(ipath, ids.astype(dt))
        res = subprocess.run([sys.executable, os.path.join(HERE, "mm_reference.py"), "--config", CONFIG,
                              "--weights", wpath, "--input-ids", ipath, "--dump-logits", opath, "--generate", "3"],
                             capture_output=True, text=True, check=True)
        assert np.array_equal(np.load(opath), m.forward(ids)), dt
        gen = m.generate(ids, 3)
        assert res.stdout.splitlines() == [f"generated[{b}]: " + " ".join(map(str, gen[b])) for b in range(2)]
    bad = os.path.join(TMP, "bad.npy")
    np.save(bad, np.array([[0, 500]], dtype=np.int32))
    res = subprocess.run([sys.executable, os.path.join(HERE, "mm_reference.py"), "--config", CONFIG,
                          "--weights", wpath, "--input-ids", bad], capture_output=True, text=True)
    assert res.returncode != 0 and "out of range" in res.stderr, "bad id is a clean error"


def main():
    tests = [(n, f) for n, f in globals().items() if n.startswith("test_") and callable(f)]
    failed = 0
    for name, fn in tests:
        try:
            fn()
            print(f"PASS {name}")
        except Exception:  # report every failure, not just the first
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
    print(f"{len(tests) - failed}/{len(tests)} passed")
    shutil.rmtree(TMP, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
