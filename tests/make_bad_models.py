#!/usr/bin/env python3
"""Writes hostile variants of a good safetensors model into a directory, one per failure mode.

usage: make_bad_models.py GOOD.safetensors OUTDIR
Prints one line per file: "<file name> <substring the error message must contain>".
"""
import json
import struct
import sys


def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def pack(header, data, header_bytes=None):
    h = header_bytes if header_bytes is not None else json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def repack(header, data, drop=(), add=None):
    """The tensors minus `drop`, plus `add` (name -> (dtype, shape, bytes)), laid out back to
    back: a well-formed file whose only fault is its content."""
    h, blobs, off = {}, [], 0
    if "__metadata__" in header:
        h["__metadata__"] = header["__metadata__"]
    items = [(k, v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
             for k, v in header.items() if k != "__metadata__" and k not in drop]
    items += [(k, d, sh, b) for k, (d, sh, b) in (add or {}).items()]
    for name, dtype, shape, blob in items:
        h[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    return h, b"".join(blobs)


def with_value(header, data, name, index, value):
    """data with element `index` of F32 tensor `name` set to value."""
    b = header[name]["data_offsets"][0] + 4 * index
    return data[:b] + struct.pack("<f", value) + data[b + 4:]


def main():
    good, outdir = sys.argv[1], sys.argv[2]
    header, data = load(good)
    raw = open(good, "rb").read()
    names = sorted(k for k in header if k != "__metadata__")
    first = names[0]
    cases = {}

    cases["truncated_header"] = (raw[:100], "")
    cases["truncated_data"] = (raw[: len(raw) - 1000], "")
    cases["tiny"] = (raw[:5], "")
    cases["header_past_end"] = (struct.pack("<Q", len(raw) * 4) + raw[8:], "header")
    cases["malformed_json"] = (pack(None, data, json.dumps(header).encode()[:-7] + b"!!"), "JSON")

    h = json.loads(json.dumps(header))
    h[first]["data_offsets"] = [len(data) - 4, len(data) + 1000]
    cases["offsets_out_of_range"] = (pack(h, data), first)

    h = json.loads(json.dumps(header))
    a, b = names[0], names[1]
    begin = h[a]["data_offsets"][0]
    size_b = h[b]["data_offsets"][1] - h[b]["data_offsets"][0]
    h[b]["data_offsets"] = [begin, begin + size_b]
    if h[b]["data_offsets"][1] > len(data):
        h[b]["data_offsets"] = [0, size_b]
    cases["overlapping"] = (pack(h, data), "overlap")

    h = json.loads(json.dumps(header))
    h[first]["dtype"] = "X99"
    cases["unknown_dtype"] = (pack(h, data), "X99")

    victim = "decoder.conv_out.weight"
    cases["missing_tensor"] = (pack(*repack(header, data, drop=[victim])), victim)

    # The data section must be exactly the tensors' bytes.
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8 or 8)  # at least one byte of padding, so a shorter length parses
    cases["header_length_short"] = (struct.pack("<Q", len(hb) - 1) + hb + data, "1 trailing byte")
    cases["trailing_bytes"] = (pack(header, data + b"\0" * 8), "8 trailing bytes")
    h = json.loads(json.dumps(header))
    last = max(names, key=lambda k: h[k]["data_offsets"][0])
    h[last]["data_offsets"] = [o + 4 for o in h[last]["data_offsets"]]
    cases["gap"] = (pack(h, data + b"\0" * 4), "belong to no tensor")

    # Every tensor must be used by the model the config describes.
    h, d = repack(header, data, add={"encoder.extra.weight": ("F32", [2], b"\0" * 8)})
    cases["unused_tensor"] = (pack(h, d), "encoder.extra.weight")
    h = json.loads(json.dumps(header))
    cfg = json.loads(h["__metadata__"]["config"])
    if cfg["ddconfig"]["attn_resolutions"]:
        cfg["ddconfig"]["attn_resolutions"] = []
        h["__metadata__"]["config"] = json.dumps(cfg)
        cases["config_without_attention"] = (pack(h, data), "not part of the model")

    # Weights must be finite.
    cases["nan_weight"] = (pack(header, with_value(header, data, "decoder.conv_in.weight", 5, float("nan"))),
                           "decoder.conv_in.weight")
    cases["inf_weight"] = (pack(header, with_value(header, data, "quantize.embedding.weight", 0, float("-inf"))),
                           "quantize.embedding.weight")

    h = json.loads(json.dumps(header))
    del h["__metadata__"]["format"]
    cases["format_missing"] = (pack(h, data), "no 'format'")

    h = json.loads(json.dumps(header))
    victim = "encoder.conv_in.bias"
    off = h[victim]["data_offsets"]
    n = (off[1] - off[0]) // 4
    # same byte count, different shape: only the shape check can catch it
    h[victim]["shape"] = [n // 2, 2]
    cases["wrong_shape"] = (pack(h, data), victim)

    h = json.loads(json.dumps(header))
    del h["__metadata__"]["config"]
    cases["config_missing"] = (pack(h, data), "config")

    h = json.loads(json.dumps(header))
    cfg = json.loads(h["__metadata__"]["config"])
    cfg["ddconfig"]["ch"] = 64
    h["__metadata__"]["config"] = json.dumps(cfg)
    cases["config_inconsistent"] = (pack(h, data), "shape")

    h = json.loads(json.dumps(header))
    h["__metadata__"]["config"] = "{not json"
    cases["config_bad_json"] = (pack(h, data), "config")

    h = json.loads(json.dumps(header))
    h["__metadata__"]["format"] = "taming-gpt"
    cases["wrong_format"] = (pack(h, data), "taming-gpt")

    for name, (blob, needle) in cases.items():
        open(f"{outdir}/{name}.safetensors", "wb").write(blob)
        print(name, needle)


if __name__ == "__main__":
    main()
