#!/usr/bin/env python3
"""Makes a broken copy of a checkpoint folder for the bad-input tests (standard library only).

    bad_checkpoint.py SRC DST KIND [ARG]

KIND:
  copy                  an intact copy
  missing-shard         deletes the shard holding tensor ARG (a sharded SRC)
  truncate              cuts model.safetensors to half its size (the header stays whole)
  overlap               makes tensor ARG's data_offsets cover the bytes of the tensor before it
  span                  shortens tensor ARG's data_offsets by one element
  shape                 reverses tensor ARG's shape (same size, wrong layout)
  dtype                 marks tensor ARG as I32 (same size as F32, not a float)
  config KEY=JSON       sets one field of config.json (e.g. num_local_experts=2)
"""
import json
import os
import shutil
import struct
import sys


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def write(path, header, body):
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + body)


def file_of(folder, tensor):
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            return os.path.join(folder, json.load(f)["weight_map"][tensor])
    return os.path.join(folder, "model.safetensors")


def main():
    src, dst, kind = sys.argv[1:4]
    arg = sys.argv[4] if len(sys.argv) > 4 else None
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    if kind == "copy":
        return
    if kind == "missing-shard":
        os.remove(file_of(dst, arg))
    elif kind == "truncate":
        path = os.path.join(dst, "model.safetensors")
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(size // 2)
    elif kind == "config":
        key, value = arg.split("=", 1)
        path = os.path.join(dst, "config.json")
        with open(path) as f:
            cfg = json.load(f)
        cfg[key] = json.loads(value)
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
    else:
        path = file_of(dst, arg)
        header, body = read(path)
        t = header[arg]
        if kind == "overlap":
            prev = max((v for k, v in header.items() if k != "__metadata__" and
                        v["data_offsets"][1] <= t["data_offsets"][0]),
                       key=lambda v: v["data_offsets"][1])
            size = t["data_offsets"][1] - t["data_offsets"][0]
            t["data_offsets"] = [prev["data_offsets"][0], prev["data_offsets"][0] + size]
        elif kind == "span":
            t["data_offsets"][1] -= 4
        elif kind == "shape":
            t["shape"] = t["shape"][::-1]
        elif kind == "dtype":
            t["dtype"] = "I32"
        else:
            sys.exit(f"unknown kind {kind}")
        write(path, header, body)


if __name__ == "__main__":
    main()
