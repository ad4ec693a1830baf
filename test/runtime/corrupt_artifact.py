#!/usr/bin/env python3
"""Corrupts an mm artifact in many ways and checks that mm-run never crashes or hangs on it.

Each corrupted copy (byte flips and overwrites at offsets spread over the whole file, truncations,
wrong schema versions) is run with mm-run. A run passes when it exits 0 (the corruption hit
something harmless) or exits 1 with exactly one stderr line "mm-run: error: ...". It fails when it
dies from a signal, exits with any other code, runs past the timeout, or prints a multi-line error.

usage: corrupt_artifact.py --mm-run PATH --artifact PATH --weights PATH --input-ids PATH
                           [--count 300] [--seed 1] [--timeout 10]
Exit status 0 when every run passed, 1 otherwise (the failing cases are listed).
"""

import argparse
import os
import random
import struct
import subprocess
import sys
import tempfile


def version_offset(data):
    """Byte offset of Program.version (field 0 of the root table), or None if absent."""
    try:
        root = struct.unpack_from("<I", data, 0)[0]
        vtable = root - struct.unpack_from("<i", data, root)[0]
        vtable_size = struct.unpack_from("<H", data, vtable)[0]
        if vtable_size < 6:
            return None
        field = struct.unpack_from("<H", data, vtable + 4)[0]
        return root + field if field else None
    except struct.error:
        return None


def cases(data, count, seed):
    """Yields (label, corrupted bytes, must_be_rejected)."""
    rng = random.Random(seed)
    size = len(data)
    for i in range(count):
        # Stratified offsets: one in each of `count` equal slices of the file.
        offset = min(size - 1, int((i + rng.random()) * size / count))
        mode = i % 4
        corrupted = bytearray(data)
        if mode == 0:
            corrupted[offset] ^= 1 << rng.randrange(8)
            label = "flip bit at %d" % offset
        elif mode == 1:
            corrupted[offset] = 0xFF
            label = "0xff at %d" % offset
        elif mode == 2:
            corrupted[offset] = 0x00
            label = "0x00 at %d" % offset
        else:
            span = min(4, size - offset)
            for j in range(span):
                corrupted[offset + j] = rng.randrange(256)
            label = "random %d bytes at %d" % (span, offset)
        yield label, bytes(corrupted), False
    for length in sorted({0, 1, 4, 7, 8, 12, 16, size // 4, size // 2, size - 8, size - 1}):
        if 0 <= length < size:
            # The tail of a flatbuffer may be padding no table reaches, so only short cuts must fail.
            yield "truncate to %d" % length, data[:length], length <= 16
    yield "trailing garbage", data + bytes(rng.randrange(256) for _ in range(64)), False
    where = version_offset(data)
    if where is not None:
        for version in (0, 2, 0xFFFFFFFF):
            corrupted = bytearray(data)
            struct.pack_into("<I", corrupted, where, version)
            yield "version %d" % version, bytes(corrupted), True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mm-run", required=True)
    parser.add_argument("--artifact", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--input-ids", required=True)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()

    with open(args.artifact, "rb") as f:
        data = f.read()
    if not data:
        print("corrupt_artifact: error: %s is empty" % args.artifact, file=sys.stderr)
        return 1

    ok = rejected = 0
    failures = []
    with tempfile.TemporaryDirectory(prefix="mm_corrupt_") as tmp:
        path = os.path.join(tmp, "corrupt.mmb")
        logits = os.path.join(tmp, "logits.npy")
        for label, corrupted, must_reject in cases(data, args.count, args.seed):
            with open(path, "wb") as f:
                f.write(corrupted)
            cmd = [args.mm_run, path, "--weights", args.weights, "--input-ids",
                   args.input_ids, "--dump-logits", logits, "--generate", "2"]
            try:
                proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                      timeout=args.timeout)
            except subprocess.TimeoutExpired:
                failures.append("%s: hung (> %g s)" % (label, args.timeout))
                continue
            err = proc.stderr.decode("utf-8", "replace")
            lines = err.splitlines()
            if proc.returncode < 0:
                failures.append("%s: killed by signal %d" % (label, -proc.returncode))
            elif proc.returncode == 0:
                if must_reject:
                    failures.append("%s: accepted but must be rejected" % label)
                else:
                    ok += 1
            elif proc.returncode != 1:
                failures.append("%s: exit code %d: %s" % (label, proc.returncode, err.strip()))
            elif len(lines) != 1 or not lines[0].startswith("mm-run: error: "):
                failures.append("%s: error is not one 'mm-run: error:' line: %r" % (label, err))
            else:
                rejected += 1

    total = ok + rejected + len(failures)
    print("corrupt_artifact: %d runs on %s (%d bytes): %d ok, %d rejected, %d failed"
          % (total, args.artifact, len(data), ok, rejected, len(failures)))
    for failure in failures:
        print("  FAIL " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
