#!/usr/bin/env bash
# convert_lpips.py: split the fixture LPIPS back into torchvision/LPIPS-shaped files, convert
# them, and check that every tensor comes back and that train-vqgan loads the result.
# Usage: cli_convert_lpips.sh <vqgpt binary> <fixtures dir>
set -uo pipefail
VQGPT=$(realpath "$1")
FX=$(realpath "$2")
HERE=$(dirname "$(realpath "$0")")
# Debian's torch serves /usr/bin/python3, which may not be the python3 first on PATH.
TORCH_PY=python3
$TORCH_PY -c "import torch" 2>/dev/null || TORCH_PY=/usr/bin/python3
if ! $TORCH_PY -c "import torch" 2>/dev/null; then echo "skipped: python3-torch not installed"; exit 0; fi
source "$HERE/lib.sh"

check "convert_lpips.py round trip (above)" $TORCH_PY - "$FX/lpips_rand.safetensors" "$TMP" "$HERE/../tools" <<'PY'
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
ok "train-vqgan with the converted LPIPS" "$VQGPT" train-vqgan --data "$FX/photos" --config tiny --size 32 \
  --steps 2 --batch 2 --val 1 --lpips lpips.safetensors --log-every 1 --out v.safetensors
check "LPIPS was not used" ! grep -q "lpips 0.0000" err.txt

finish cli_convert_lpips
