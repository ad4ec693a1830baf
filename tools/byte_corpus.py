#!/usr/bin/env python3
"""Byte-level token file from a text corpus, and the corpus's unigram entropy.

    byte_corpus.py -o tokens.bin [FILES or DIRS ...]   (default: /usr/share/common-licenses)

Regular files (symlinks skipped, sorted by path) are concatenated; each byte is one token (vocab 256),
written as header-less little-endian uint16 (mm-run train --data-dtype uint16). Prints one JSON line:
the token count and the unigram (byte-frequency) entropy in nats and bits per token. A model that
beats the unigram entropy has learned context.
"""
import argparse
import json
import math
import os
import struct
import sys


def files_of(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += [os.path.join(p, f) for f in sorted(os.listdir(p))
                    if os.path.isfile(os.path.join(p, f)) and not os.path.islink(os.path.join(p, f))]
        else:
            out.append(p)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("paths", nargs="*", default=["/usr/share/common-licenses"])
    args = ap.parse_args()
    files = files_of(args.paths)
    data = b"".join(open(f, "rb").read() for f in files)
    if not data:
        sys.exit("empty corpus")
    with open(args.out, "wb") as f:
        f.write(struct.pack(f"<{len(data)}H", *data))
    counts = [0] * 256
    for b in data:
        counts[b] += 1
    n = len(data)
    h = -sum(c / n * math.log(c / n) for c in counts if c)
    print(json.dumps({"files": len(files), "tokens": n, "unigram_entropy_nats": round(h, 6),
                      "unigram_entropy_bits": round(h / math.log(2), 6)}))


if __name__ == "__main__":
    main()
