#!/usr/bin/env python3
"""Writes the GumbelVQ parity fixture: a tiny taming.models.vqgan.GumbelVQ with random weights,
run by the reference code itself, and what it computes on one non-square input.

usage: make_gumbel_fixture.py --reference DIR --out DIR
  DIR (reference): a taming-transformers checkout (its taming/ package and stubs.py).
Writes, into --out:
  gumbel_tiny.safetensors     the model (F16): reference state_dict names, format "taming-vqgan",
                              config {"quantizer": "gumbel", "embed_dim", "n_embed", "ddconfig"}
  gumbel_tiny_io.safetensors  x [1,3,16,24] (= gumbel_tiny_input.png / 127.5 - 1), z (quant_conv
                              output), logits (quantize.proj), indices [8,12] (I32, argmax of
                              the logits), xrec [1,3,16,24] (decode of the codebook entries of
                              indices)
  gumbel_tiny_input.png       the input's pixels

The reference's GumbelQuantize draws F.gumbel_softmax(logits, hard=True) even in eval mode, so
its encode() samples a code from softmax(logits) (the temperature does not change the argmax
of logits + Gumbel noise). vqgpt encodes with the noise-free argmax, the mode of that
distribution; indices here are that argmax, from the logits the reference module returns.
Needs python3 with torch (Debian: python3-torch) and numpy. Run it once; the outputs are
committed, the tests do not need the reference.
"""

import argparse
import json
import os
import struct
import sys
import types
import zlib

import numpy as np
import torch

CONFIG = {
    "quantizer": "gumbel", "embed_dim": 16, "n_embed": 32,
    "ddconfig": {"double_z": False, "z_channels": 16, "resolution": 16, "in_channels": 3,
                 "out_ch": 3, "ch": 32, "ch_mult": [1, 1], "num_res_blocks": 1,
                 "attn_resolutions": [8], "dropout": 0.0},
}
H, W = 16, 24
SEED = 6


def import_reference(ref):
    """GumbelVQ from the reference, with its training-only imports (Lightning, main) stubbed."""
    sys.path.insert(0, ref)
    import stubs  # noqa: F401  (einops, transformers)
    sys.modules["pytorch_lightning"] = types.SimpleNamespace(LightningModule=torch.nn.Module)

    def instantiate_from_config(cfg):  # the loss and the temperature schedule: unused here
        return torch.nn.Identity() if cfg == "loss" else (lambda step: 1.0)

    sys.modules["main"] = types.SimpleNamespace(instantiate_from_config=instantiate_from_config)
    from taming.models.vqgan import GumbelVQ
    return GumbelVQ


def write_safetensors(path, tensors, meta=None):
    codes = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int32"): "I32"}
    header, blobs, off = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": codes[a.dtype], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def write_png(path, rgb):
    """rgb: (H, W, 3) uint8."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    GumbelVQ = import_reference(os.path.abspath(args.reference))
    torch.manual_seed(SEED)
    model = GumbelVQ(ddconfig=CONFIG["ddconfig"], lossconfig="loss", n_embed=CONFIG["n_embed"],
                     embed_dim=CONFIG["embed_dim"], temperature_scheduler_config="schedule")
    # Weights rounded to half precision and stored as F16: the file stays small, and the
    # reference runs on exactly the weights the C code loads.
    model.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    model.eval()
    # A smooth image with noise, so the codes vary over the grid.
    rng = np.random.default_rng(SEED)
    yy, xx = np.mgrid[0:H, 0:W]
    base = np.stack([xx / W, yy / H, (xx + yy) / (W + H)], -1) * 200 + 20
    pixels = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
    x = torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None].contiguous()
    with torch.no_grad():
        z = model.quant_conv(model.encoder(x))
        _, _, _, logits = model.quantize(z, return_logits=True)
        indices = logits.argmax(dim=1)[0]
        top2 = logits.topk(2, dim=1).values
        gap = float((top2[:, 0] - top2[:, 1]).min())
        zq = model.quantize.get_codebook_entry(indices.flatten(), (1, H // 2, W // 2, 16))
        xrec = model.decode(zq)
    if gap < 1e-3:
        sys.exit(f"smallest top-1/top-2 logit gap {gap:.2e}: codes not well defined; change SEED")
    sd = {k: v.detach().half().numpy() for k, v in model.state_dict().items()}
    os.makedirs(args.out, exist_ok=True)
    write_safetensors(os.path.join(args.out, "gumbel_tiny.safetensors"), sd,
                      {"format": "taming-vqgan", "config": json.dumps(CONFIG)})
    write_safetensors(os.path.join(args.out, "gumbel_tiny_io.safetensors"),
                      {"x": x.numpy(), "z": z.numpy(), "logits": logits.numpy(),
                       "indices": indices.numpy().astype(np.int32), "xrec": xrec.numpy()})
    write_png(os.path.join(args.out, "gumbel_tiny_input.png"), pixels)
    print(f"{len(sd)} tensors; codes used {len(set(indices.flatten().tolist()))} of "
          f"{CONFIG['n_embed']}; smallest logit gap {gap:.3e}; |xrec| max "
          f"{float(xrec.abs().max()):.3f}")


if __name__ == "__main__":
    main()
