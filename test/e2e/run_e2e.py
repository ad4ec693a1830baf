#!/usr/bin/env python3
"""End-to-end check of a compiled artifact against the NumPy reference.

    run_e2e.py --mm-run BIN --artifact A.mmb --config C --weights W [--tmp DIR] [--extra "ARGS"]

For sequence lengths 1, 7, block_size+1 and 2*block_size+8 at batch 1 and 2 (the artifact must allow
batch 2 and seq >= 2*block_size+8), it runs
    BIN A.mmb --weights W --input-ids ids.npy --dump-logits out.npy
and requires ‖out−ref‖/‖ref‖ <= 1e-5 (--rel-tol; the fp32 GPU backend is held to 1e-4) and identical argmax at every position. An artifact compiled with
logits=last writes [B, 1, V], compared with the reference's last position.

With --bf16 (an artifact compiled with dtype=bf16) the check is the bf16 one: a token whose top-k
router probabilities are within ROUTE_MARGIN of the next expert's may legitimately be routed
differently, and attention carries that to every later position, so each sequence is compared up
to its first such token (the rest is reported, not judged); --rel-tol applies there (BF16_REL_TOL
by default), argmax must agree where the reference's top-2 gap exceeds 2·rel-tol·max|ref|, and
greedy generation (a discrete function of those logits) is not required to match. Then it runs
    BIN A.mmb --weights W --input-ids ids.npy --generate 5
and requires the printed lines `generated[b]: t1 ... t5` (the new tokens only) to equal the
reference's greedy continuation. Prints a table; exits non-zero on any failure.
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mm_reference  # noqa: E402

REL_TOL = 1e-5
BF16_REL_TOL = 3e-2
ROUTE_MARGIN = 1e-2
GEN_TOKENS = 5


def run(cmd, timeout):
    """Runs cmd; returns (ok, stdout, message)."""
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, "", str(e)
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        return False, res.stdout, f"exit {res.returncode}: " + " | ".join(tail)
    return True, res.stdout, ""


def compare(out, ref, rel_tol=REL_TOL, margin=None):
    """Returns (rel_err, problem or ''). `margin` ([B,T] router margins) selects the bf16 check."""
    if out.shape[1] == 1 and ref.shape[1] > 1:   # logits=last
        ref = ref[:, -1:]
        margin = None if margin is None else margin[:, -1:] if (margin >= ROUTE_MARGIN).all() \
            else np.where((margin < ROUTE_MARGIN).any(axis=1, keepdims=True), 0.0, np.inf)
    if out.shape != ref.shape:
        return float("nan"), f"shape {out.shape} != reference {ref.shape}"
    out = out.astype(np.float64)
    if not np.isfinite(out).all():
        return float("nan"), "non-finite logits"
    keep = np.ones(ref.shape[:2], dtype=bool)
    if margin is not None:   # each sequence up to its first near-tie routing
        keep = np.cumsum(margin < ROUTE_MARGIN, axis=1) == 0
        if not keep.any():
            return float("nan"), ""
    rel = float(np.linalg.norm(out[keep] - ref[keep]) / np.linalg.norm(ref[keep]))
    if rel > rel_tol:
        return rel, f"rel err > {rel_tol:.0e}"
    if margin is not None:
        top2 = np.sort(ref, axis=-1)[..., -2:]
        keep &= top2[..., 1] - top2[..., 0] > 2 * rel_tol * np.abs(ref).max()
    bad = np.argwhere((np.argmax(out, axis=-1) != np.argmax(ref, axis=-1)) & keep)
    if bad.size:
        b, t = bad[0]
        top2 = np.sort(ref[b, t])[-2:]
        return rel, f"argmax differs at {len(bad)} positions, first [b={b},t={t}] (reference top-2 gap {top2[1] - top2[0]:.2e})"
    return rel, ""


def parse_generated(stdout):
    """{b: [tokens]} from lines 'generated[b]: t1 t2 ...'."""
    got = {}
    for line in stdout.splitlines():
        m = re.match(r"\s*generated\[(\d+)\]:\s*(.*)$", line)
        if m:
            got[int(m.group(1))] = [int(t) for t in m.group(2).split()]
    return got


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mm-run", required=True, help="path of the mm-run binary")
    ap.add_argument("--artifact", required=True, help="compiled .mmb (max batch >= 2, max seq >= 2*block_size+8)")
    ap.add_argument("--config", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--tmp", help="folder for ids/logits files (default: a fresh temporary folder)")
    ap.add_argument("--extra", default="", help='extra mm-run arguments, e.g. --extra="--backend cpu"')
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--rel-tol", type=float, help="largest ‖out−ref‖/‖ref‖ accepted "
                    f"(default {REL_TOL:g}, with --bf16 {BF16_REL_TOL:g})")
    ap.add_argument("--bf16", action="store_true", help="the artifact stores bf16 (see above)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per mm-run call")
    args = ap.parse_args(argv)
    if args.rel_tol is None:
        args.rel_tol = BF16_REL_TOL if args.bf16 else REL_TOL

    ref = mm_reference.Reference(args.config, args.weights)
    V, bs = ref.c["V"], ref.c["block_size"]
    tmp = args.tmp or tempfile.mkdtemp(prefix="mm_e2e_")
    os.makedirs(tmp, exist_ok=True)
    base = [args.mm_run, args.artifact, "--weights", args.weights] + shlex.split(args.extra)
    rng = np.random.default_rng(args.seed)

    rows, failures = [], 0
    cases = [(b, t) for t in (1, 7, bs + 1, 2 * bs + 8) for b in (1, 2)]
    for n, (b, t) in enumerate(cases):
        dtype = np.int32 if n % 2 == 0 else np.int64  # both id dtypes must be accepted
        ids = rng.integers(0, V, (b, t)).astype(dtype)
        name = f"b{b}_t{t}_{np.dtype(dtype).name}"
        ids_path, out_path = os.path.join(tmp, name + ".ids.npy"), os.path.join(tmp, name + ".logits.npy")
        np.save(ids_path, ids)
        if os.path.exists(out_path):
            os.remove(out_path)  # never compare against a stale file
        ok, _, msg = run(base + ["--input-ids", ids_path, "--dump-logits", out_path], args.timeout)
        rel = float("nan")
        if ok:
            try:
                want = ref.forward(ids)
                rel, msg = compare(np.load(out_path), want, args.rel_tol,
                                   ref.route_margin if args.bf16 else None)
            except (OSError, ValueError) as e:
                msg = f"cannot read {out_path}: {e}"
        rows.append((name, rel, not msg, msg))

    # Greedy generation: batch 2, 7-token prompt.
    ids = rng.integers(0, V, (2, 7)).astype(np.int32)
    ids_path = os.path.join(tmp, "generate.ids.npy")
    np.save(ids_path, ids)
    ok, stdout, msg = run(base + ["--input-ids", ids_path, "--generate", str(GEN_TOKENS)], args.timeout)
    if ok and not args.bf16:
        want = ref.generate(ids, GEN_TOKENS)
        got = parse_generated(stdout)
        for bi in range(2):
            if got.get(bi) != [int(x) for x in want[bi]]:
                msg = f"generated[{bi}]: got {got.get(bi)}, reference {[int(x) for x in want[bi]]}"
                break
    rows.append((f"generate{GEN_TOKENS}_b2_t7", float("nan"), not msg, msg))

    print(f"{'case':<22} {'rel err':>10}  ok")
    for name, rel, ok, msg in rows:
        rel_s = "-" if np.isnan(rel) else f"{rel:.2e}"
        print(f"{name:<22} {rel_s:>10}  {'ok' if ok else 'FAIL'}" + (f"  {msg}" if msg else ""))
        failures += not ok
    print(f"{len(rows) - failures}/{len(rows)} passed (files in {tmp})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
