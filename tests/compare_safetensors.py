#!/usr/bin/env python3
"""Compares the model tensors of two safetensors files (optimizer state "opt.*" left out):
prints |a - b| / |a| (L2 norms over every compared tensor together) and the worst tensor, and
exits 1 above --tol. Used by tests/cli_mpi.sh: N ranks give the model of one process, up to
float rounding. Needs numpy only."""
import argparse
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64}


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--tol", type=float, default=1e-5)
    p.add_argument("--prefix", default="", help="comma-separated name prefixes to compare (all)")
    args = p.parse_args()
    ta, tb = load(args.a), load(args.b)
    if sorted(ta) != sorted(tb):
        print("the files hold different tensors")
        return 1
    prefixes = tuple(args.prefix.split(","))
    diff2 = norm2 = 0.0
    worst, worst_name = -1.0, ""
    for name in sorted(ta):
        if name.startswith("opt.") or not name.startswith(prefixes):
            continue
        x, y = ta[name].astype(np.float64), tb[name].astype(np.float64)
        if x.shape != y.shape:
            print(f"{name}: shapes {x.shape} and {y.shape}")
            return 1
        d2, n2 = float(np.sum((x - y) ** 2)), float(np.sum(x**2))
        diff2 += d2
        norm2 += n2
        if np.sqrt(d2 / max(n2, 1e-30)) > worst:
            worst, worst_name = np.sqrt(d2 / max(n2, 1e-30)), name
    rel = np.sqrt(diff2 / norm2) if norm2 > 0 else float("inf")
    print(f"relative L2 difference {rel:.3g} (worst tensor {worst_name}: {worst:.3g})")
    return 0 if rel <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
