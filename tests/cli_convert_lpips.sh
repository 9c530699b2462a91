#!/usr/bin/env bash
# convert_lpips.py: split the fixture LPIPS back into torchvision/LPIPS-shaped files, convert
# them, and check that every tensor comes back and that train-vqgan loads the result.
set -u
VQGPT=$1
FX=$2
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
PY=python3
$PY -c "import torch" 2>/dev/null || PY=/usr/bin/python3
if ! $PY -c "import torch" 2>/dev/null; then echo "skipped: python3-torch not installed"; exit 0; fi
$PY - "$FX/lpips_rand.safetensors" "$T" "$HERE/../tools" <<'PY' || exit 1
import json, struct, sys
import torch
src, out, tools = sys.argv[1:4]
sys.path.insert(0, tools)
import convert_lpips
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
def tensor(name):
    t = hdr[name]
    b, e = t["data_offsets"]
    dt = {"F16": torch.float16, "F32": torch.float32}[t["dtype"]]
    return torch.frombuffer(bytearray(raw[8 + n + b:8 + n + e]), dtype=dt).view(t["shape"]).float()
vgg = {}
for s, idx in convert_lpips.SLICES.items():
    for i in idx:
        vgg[f"features.{i}.weight"] = tensor(f"net.slice{s}.{i}.weight")
        vgg[f"features.{i}.bias"] = tensor(f"net.slice{s}.{i}.bias")
vgg["classifier.0.weight"] = torch.zeros(4, 4)  # torchvision's file holds more than features
lin = {f"lin{k}.model.1.weight": tensor(f"lin{k}.model.1.weight") for k in range(5)}
torch.save(vgg, f"{out}/vgg16.pth")
torch.save(lin, f"{out}/vgg.pth")
assert convert_lpips.main(["--vgg16", f"{out}/vgg16.pth", "--lin", f"{out}/vgg.pth", "--out", f"{out}/lpips.safetensors"]) == 0
raw2 = open(f"{out}/lpips.safetensors", "rb").read()
n2 = struct.unpack("<Q", raw2[:8])[0]
hdr2 = json.loads(raw2[8:8 + n2])
names = sorted(k for k in hdr if k != "__metadata__")
assert sorted(k for k in hdr2 if k != "__metadata__") == names, "tensor names differ"
for k in names:
    t = hdr2[k]
    b, e = t["data_offsets"]
    got = torch.frombuffer(bytearray(raw2[8 + n2 + b:8 + n2 + e]), dtype=torch.float32).view(t["shape"])
    want = tensor(k)
    tol = 1e-3 if k.startswith("scaling") else 0
    assert (got - want).abs().max().item() <= tol, k
del lin["lin3.model.1.weight"]
torch.save(lin, f"{out}/vgg_missing.pth")
assert convert_lpips.main(["--vgg16", f"{out}/vgg16.pth", "--lin", f"{out}/vgg_missing.pth", "--out", f"{out}/bad.safetensors"]) == 1
PY
# The converted file drives a training step as the perceptual loss.
"$VQGPT" train-vqgan --data "$FX/photos" --config tiny --size 32 --steps 2 --batch 2 --val 1 \
  --lpips "$T/lpips.safetensors" --log-every 1 --out "$T/v.safetensors" 2>"$T/log" || { cat "$T/log"; exit 1; }
grep -q "lpips 0.0000" "$T/log" && { echo "LPIPS was not used"; exit 1; }
echo "cli_convert_lpips: 3 passed, 0 failed"
