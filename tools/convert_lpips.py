#!/usr/bin/env python3
"""Convert the real LPIPS (VGG) weights into the safetensors file `train-vqgan --lpips` reads.

usage: convert_lpips.py --vgg16 vgg16-397923af.pth --lin vgg.pth --out lpips.safetensors

--vgg16  torchvision's ImageNet VGG16 state_dict (features.{i}.weight/bias), the file
         torchvision.models.vgg16(pretrained=True) downloads (vgg16-397923af.pth).
--lin    the LPIPS linear heads (lin{0..4}.model.1.weight), the vgg.pth that
         taming-transformers fetches into taming/modules/autoencoder/lpips/.
The output holds the reference's state_dict names (net.slice{1..5}.{i}.*, lin{k}.model.1.weight,
scaling_layer.shift/scale) in F32, format "taming-lpips". Needs torch (Debian: python3-torch).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_taming import ConvertError, write_safetensors  # noqa: E402

# VGG16 feature indices of the conv layers, by LPIPS slice (relu1_2 .. relu5_3).
SLICES = {1: (0, 2), 2: (5, 7), 3: (10, 12, 14), 4: (17, 19, 21), 5: (24, 26, 28)}
LIN_CHANNELS = (64, 128, 256, 512, 512)
# taming.modules.losses.lpips.ScalingLayer
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


def load(path):
    import torch
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: no such file")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConvertError(f"{path}: cannot load: {' '.join(str(e).split())}")
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ConvertError(f"{path}: not a state_dict")
    return sd


def take(sd, key, source, shape=None):
    if key not in sd:
        raise ConvertError(f"{source}: missing tensor '{key}'")
    t = sd[key].float()
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise ConvertError(f"{source}: tensor '{key}' has shape {list(t.shape)}, expected {list(shape)}")
    return t


def convert(vgg, lin, vgg_path, lin_path):
    import torch
    out = {}
    for s, indices in SLICES.items():
        for i in indices:
            out[f"net.slice{s}.{i}.weight"] = take(vgg, f"features.{i}.weight", vgg_path)
            out[f"net.slice{s}.{i}.bias"] = take(vgg, f"features.{i}.bias", vgg_path)
    for k, c in enumerate(LIN_CHANNELS):
        out[f"lin{k}.model.1.weight"] = take(lin, f"lin{k}.model.1.weight", lin_path, (1, c, 1, 1))
    out["scaling_layer.shift"] = torch.tensor(SHIFT).view(1, 3, 1, 1)
    out["scaling_layer.scale"] = torch.tensor(SCALE).view(1, 3, 1, 1)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="convert_lpips.py", usage=argparse.SUPPRESS, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vgg16", required=True, help="torchvision VGG16 state_dict (.pth)")
    ap.add_argument("--lin", required=True, help="LPIPS linear heads (vgg.pth)")
    ap.add_argument("--out", required=True, help="output .safetensors")
    args = ap.parse_args(argv)
    try:
        try:
            import torch  # noqa: F401
        except ImportError as e:
            raise ConvertError(f"needs torch ({e}); Debian: apt-get install python3-torch")
        tensors = convert(load(args.vgg16), load(args.lin), args.vgg16, args.lin)
        write_safetensors(args.out, tensors, {"format": "taming-lpips"})
    except ConvertError as e:
        print(f"convert_lpips: {e}", file=sys.stderr)
        return 1
    print(f"convert_lpips: {len(tensors)} tensors -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
