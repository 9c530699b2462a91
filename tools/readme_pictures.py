#!/usr/bin/env python3
"""Draws the README's pictures (docs/*.png) with the shipped models, as a user gets them.

usage: readme_pictures.py --vqgpt BIN [--out docs] [--photos DIR] [--only NAME ...]

  fmnist_classes.png  `vqgpt sample --class K --num 8 --seed 1`, one row per class K = 0..9
  prompts.png         `vqgpt sample --prompt P --num 8 --seed 1` for the five PROMPTS, side by side
  panorama.png        `vqgpt sample --grid 16x64 --seed 2`, then `--seed 1`, one above the other
  completion.png      (needs --photos, the folder of README "The training photographs") for each
                      of COMPLETIONS: the photograph scaled to 128 pixels high, its
                      reconstruction, and `vqgpt sample --init-image PHOTO --resize 128
                      --keep-rows R --seed S` for S = 1, 2, 3; one row per photograph

No model flags are given, so the defaults a user gets are drawn (`$VQGPT_MODELS`, then the
`models/` folder beside or above the binary). Needs numpy; the completion picture also
torchvision (Debian: python3-torchvision) to read the JPEG photographs.
"""
import argparse
import os
import subprocess
import sys
import tempfile

# fmnist_folders re-runs this script under /usr/bin/python3 when numpy is missing.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fmnist_folders as F  # noqa: E402
import numpy as np  # noqa: E402

PROMPTS = [
    "a red sneaker and a blue bag",
    "green trousers on the left, yellow ankle boot on the right",
    "a white coat to the right of a blue t-shirt",  # the right item named first
    "a yellow dress and a red shirt",  # held out: dress|shirt never trained on
    "a green dress to the right of a white t-shirt",  # held out: t-shirt|dress
]
# (photograph under --photos, code rows kept): one of the training folder, one never trained on.
COMPLETIONS = [
    ("landscapes/lakes/39933489595_f0e5d85b6d_b.jpg", 6),
    ("misc/000000303653.jpg", 8),
]
GAP = 4  # white pixels between the pieces of a picture
GRID_BORDER = 2  # data/image.c vqgpt_image_grid


def vqgpt(binary, args, tmp, name):
    """Runs `vqgpt ARGS --out TMP/NAME` and returns the picture it wrote."""
    out = os.path.join(tmp, name)
    run = subprocess.run([binary] + args + ["--out", out], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    if run.returncode:
        sys.exit("readme_pictures.py: vqgpt %s failed: %s" % (" ".join(args), run.stderr.strip()))
    return F.read_png(out)


def tile(rows):
    """One picture of rows of pictures (uint8 [h, w, 3]), GAP white pixels between and around."""
    heights = [max(p.shape[0] for p in row) for row in rows]
    widths = [sum(p.shape[1] for p in row) + GAP * (len(row) - 1) for row in rows]
    out = np.full((sum(heights) + GAP * (len(rows) + 1), max(widths) + 2 * GAP, 3), 255, np.uint8)
    y = GAP
    for row, h in zip(rows, heights):
        x = GAP
        for p in row:
            out[y:y + p.shape[0], x:x + p.shape[1]] = p
            x += p.shape[1] + GAP
        y += h + GAP
    return out


def scaled_photo(path, height):
    """The photograph scaled to `height` pixels high and center-cropped to a width that is a
    multiple of 16, as `--resize` does (antialiased bilinear)."""
    import torch
    import torchvision.io as io
    import torch.nn.functional as tf
    img = io.read_image(path, io.ImageReadMode.RGB).float()[None]
    h, w = img.shape[2:]
    if w < h:
        sys.exit("readme_pictures.py: %s is portrait; the completions use landscape photographs" % path)
    nw = int(w * height / h + 0.5)
    img = tf.interpolate(img, size=(height, nw), mode="bilinear", antialias=True, align_corners=False)
    cw = nw // 16 * 16
    x0 = (nw - cw) // 2
    return img[0, :, :, x0:x0 + cw].clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def cells(grid, h, w, n):
    """The first n h x w pictures of a vqgpt grid picture (GRID_BORDER pixels around each)."""
    b, cols = GRID_BORDER, (grid.shape[1] - GRID_BORDER) // (w + GRID_BORDER)
    return [grid[b + (k // cols) * (h + b):][:h, b + (k % cols) * (w + b):][:, :w] for k in range(n)]


def classes(binary, tmp):
    return tile([cells(vqgpt(binary, ["sample", "--class", str(k), "--num", "8", "--seed", "1"],
                             tmp, "class%d.png" % k), 32, 32, 8) for k in range(10)])


def prompts(binary, tmp):
    return tile([[vqgpt(binary, ["sample", "--prompt", p, "--num", "8", "--seed", "1"], tmp,
                        "prompt%d.png" % i) for i, p in enumerate(PROMPTS)]])


def panorama(binary, tmp):
    return tile([[vqgpt(binary, ["sample", "--grid", "16x64", "--seed", s], tmp, "pano%s.png" % s)]
                 for s in ("2", "1")])


def completion(binary, tmp, photos):
    rows = []
    for i, (name, keep) in enumerate(COMPLETIONS):
        path = os.path.join(photos, name)
        if not os.path.isfile(path):
            sys.exit("readme_pictures.py: %s: no such photograph" % path)
        row = [scaled_photo(path, 128),
               vqgpt(binary, ["reconstruct", "--image", path, "--resize", "128",
                              "--vqgan", find_model(binary, "vqgan_landscape.safetensors")],
                     tmp, "rec%d.png" % i)]
        for s in ("1", "2", "3"):
            row.append(vqgpt(binary, ["sample", "--init-image", path, "--resize", "128",
                                      "--keep-rows", str(keep), "--seed", s], tmp,
                             "comp%d_%s.png" % (i, s)))
        rows.append(row)
    return tile(rows)


def find_model(binary, name):
    """A shipped model file, where vqgpt looks for it (reconstruct has no default VQGAN)."""
    here = os.path.dirname(os.path.realpath(binary))
    for d in [os.environ.get("VQGPT_MODELS", "")] + [os.path.join(here, *[".."] * k, "models")
                                                     for k in range(3)]:
        if d and os.path.isfile(os.path.join(d, name)):
            return os.path.join(d, name)
    sys.exit("readme_pictures.py: %s not found beside or above %s" % (name, binary))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vqgpt", required=True, help="the vqgpt binary")
    ap.add_argument("--out", default="docs", help="folder for the pictures")
    ap.add_argument("--photos", help="the training photographs (for completion.png)")
    ap.add_argument("--only", nargs="+", choices=["fmnist_classes", "prompts", "panorama", "completion"])
    a = ap.parse_args()
    binary = os.path.abspath(a.vqgpt)
    todo = a.only or ["fmnist_classes", "prompts", "panorama"] + (["completion"] if a.photos else [])
    with tempfile.TemporaryDirectory() as tmp:
        for name in todo:
            if name == "completion":
                if not a.photos:
                    sys.exit("readme_pictures.py: completion needs --photos")
                pic = completion(binary, tmp, a.photos)
            else:
                pic = {"fmnist_classes": classes, "prompts": prompts, "panorama": panorama}[name](binary, tmp)
            path = os.path.join(a.out, name + ".png")
            F.write_file(path, F.png_bytes(pic))
            print("%s: %dx%d" % (path, pic.shape[1], pic.shape[0]))


if __name__ == "__main__":
    main()
