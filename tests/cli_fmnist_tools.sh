#!/usr/bin/env bash
# tools/fmnist_folders.py (items and pairs folders) and the torch-free parts of
# tools/fmnist_eval.py (grid splitting, colour detector, PNG reader). Args: the vqgpt binary and
# the fixtures dir (unused). Needs numpy and the Debian package dataset-fashion-mnist; skips
# only when the data set is absent. Does not train the classifier. Also tools/readme_pictures.py
# (its class picture, with the shipped class model).
# Usage: cli_fmnist_tools.sh <vqgpt binary> <fixtures dir>
set -uo pipefail
tools=$(realpath "$(dirname "$(realpath "$0")")/../tools")
data=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
if [ ! -f "$data/t10k-images-idx3-ubyte.gz" ]; then
  echo "skipped: $data missing (apt-get install dataset-fashion-mnist)"
  exit 0
fi
source "$(dirname "$(realpath "$0")")/lib.sh"
folders() { $PY "$tools/fmnist_folders.py" "$@"; }
same_tree() { diff -r "$1" "$2" >/dev/null; }

ok "items run" folders items --split test --count 60 --seed 1 --out items
ok "pairs exclude run" folders pairs --split test --count 300 --seed 2 --heldout exclude --out ex
ok "pairs repeat run" folders pairs --split test --count 300 --seed 2 --heldout exclude --out ex2
ok "pairs seed 3 run" folders pairs --split test --count 300 --seed 3 --heldout exclude --out ex3
ok "pairs only run" folders pairs --split test --count 40 --seed 2 --heldout only --out only

check "same seed gave different folders" same_tree ex ex2
check "different seeds gave the same folder" ! same_tree ex ex3

# A non-empty --out is refused with one line (the tool's own, naming the folder), and left as
# it was.
ERR_PREFIX="$TMP/items: " NOFILES="" \
  bad "non-empty --out" "not empty" folders items --split test --count 5 --out "$TMP/items"
check "refused run changed the folder" [ "$(find items -name '*.png' | wc -l)" -eq 60 ]

check "folders, pixels, captions, held-out rule, colour detector, grid or PNG reader (above)" \
  $PY - "$tools" "$TMP" <<'PY'
import csv, os, sys, struct, zlib
import numpy as np
sys.path.insert(0, sys.argv[1])
import fmnist_folders as F
import fmnist_eval as E
T = sys.argv[2]
images, labels = F.load_split("test")
errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)

# items: folders in label order, 32x32 RGB grey, item centred on a 2-pixel black border.
folders = sorted(d for d in os.listdir(T + "/items") if os.path.isdir(T + "/items/" + d))
check(folders == ["0_t-shirt", "1_trousers", "2_pullover", "3_dress", "4_coat", "5_sandal",
                  "6_shirt", "7_sneaker", "8_bag", "9_ankle-boot"], "item folders: %s" % folders)
rows = list(csv.DictReader(open(T + "/items/labels.csv", encoding="utf-8")))
check(len(rows) == 60, "items labels.csv has %d rows" % len(rows))
for r in rows:
    img = F.read_png(T + "/items/" + r["file"])
    i, k = int(r["index"]), int(r["label"])
    check(img.shape == (32, 32, 3), "item %s is %s" % (r["file"], img.shape))
    check(r["file"].startswith(folders[k] + "/") and labels[i] == k, "item %s label" % r["file"])
    check((img[2:30, 2:30, 0] == images[i]).all() and (img[..., 0] == img[..., 1]).all()
          and (img[..., 0] == img[..., 2]).all() and img[:2].max() == 0 and img[:, 30:].max() == 0,
          "item %s pixels" % r["file"])

# pairs: 32x64, tinted items, captions from the templates, held-out rule, colour detector.
def load_pairs(name):
    return list(csv.DictReader(open("%s/%s/labels.csv" % (T, name), encoding="utf-8")))
ex, only = load_pairs("ex"), load_pairs("only")
check(len(ex) == 300 and len(only) == 40, "pairs labels.csv rows %d/%d" % (len(ex), len(only)))
check(sorted(r["file"] for r in ex) == [r["file"] for r in ex], "pair names not in sorted order")
held = lambda r: (int(r["right_label"]) - int(r["left_label"])) % 10 == 3
check(not any(held(r) for r in ex), "a held-out pair in an exclude set")
check(all(held(r) for r in only), "a seen pair in an only set")
check(len({r["template"] for r in ex}) == len(F.TEMPLATES) >= 3, "templates used: %s"
      % sorted({r["template"] for r in ex}))
check(len({(r["left_colour"], r["right_colour"]) for r in ex}) == 25, "not all colour pairs drawn")
found = []
for r in ex + only:
    folder = "ex" if r in ex else "only"
    img = F.read_png("%s/%s/%s" % (T, folder, r["file"]))
    check(img.shape == (32, 64, 3), "pair %s is %s" % (r["file"], img.shape))
    li, ri = int(r["left_index"]), int(r["right_index"])
    for cell, i, colour in ((img[:, :32], li, r["left_colour"]), (img[:, 32:], ri, r["right_colour"])):
        want = np.floor(images[i][..., None] * np.array(F.COLOURS[colour]) + 0.5)
        check((cell[2:30, 2:30] == want).all() and cell[:2].max() == 0, "pair %s pixels" % r["file"])
    text = open("%s/%s/%s" % (T, folder, r["file"][:-4] + ".txt"), encoding="utf-8").read()
    ci = F.COLOUR_NAMES.index
    want = F.caption(int(r["template"]), int(r["left_label"]), ci(r["left_colour"]),
                     int(r["right_label"]), ci(r["right_colour"]))
    check(text == want + "\n" and text == r["caption"] + "\n", "caption %r vs %r" % (text, want))
    found.append((E.detect_colours(img[None, :, :32])[0], ci(r["left_colour"])))
    found.append((E.detect_colours(img[None, :, 32:])[0], ci(r["right_colour"])))
check(all(a == b for a, b in found), "colour detector wrong on %d of %d real cells"
      % (sum(a != b for a, b in found), len(found)))
check(F.caption(1, 7, 0, 8, 2) == "a blue bag to the right of a red sneaker"
      and F.caption(0, 9, 4, 0, 1) == "a white ankle boot and a green t-shirt"
      and F.caption(2, 7, 0, 8, 2) == "red sneaker on the left, blue bag on the right",
      "caption wording")

# Grid splitting as data/image.c lays out `vqgpt sample --num N` (2-pixel white border).
cells = np.arange(5 * 32 * 64 * 3, dtype=np.int64).reshape(5, 32, 64, 3).astype(np.uint8)
grid = np.full((2 * 32 + 3 * 2, 3 * 64 + 4 * 2, 3), 255, np.uint8)
for k in range(5):
    oy, ox = 2 + (k // 3) * 34, 2 + (k % 3) * 66
    grid[oy:oy + 32, ox:ox + 64] = cells[k]
check((E.split_grid(grid, 5, 32, 64, "grid") == cells).all(), "split_grid")
check(E.grid_columns(100) == 10 and E.grid_columns(101) == 11 and E.grid_columns(2) == 2, "columns")

# The PNG reader undoes every row filter (vqgpt's PNGs use them all).
rng = np.random.default_rng(0)
img = rng.integers(0, 256, (6, 7, 3)).astype(np.uint8)
def filtered(rgb):
    h, w, _ = rgb.shape
    raw = rgb.reshape(h, -1).astype(np.int64)
    out = b""
    for y in range(h):
        cur = raw[y]; up = raw[y - 1] if y else np.zeros_like(cur)
        left = np.concatenate([[0, 0, 0], cur[:-3]]); ul = np.concatenate([[0, 0, 0], up[:-3]])
        p = left + up - ul
        pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, ul))
        kind = y % 5
        pred = [0, left, up, (left + up) // 2, paeth][kind]
        out += bytes([kind]) + ((cur - pred) % 256).astype(np.uint8).tobytes()
    chunk = lambda k, d: struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(out)) + chunk(b"IEND", b""))
open(T + "/filters.png", "wb").write(filtered(img))
check((F.read_png(T + "/filters.png") == img).all(), "PNG reader on filters 0-4")

for e in errors[:10]:
    print("FAIL:", e)
print("ok: folders, pixels, captions, held-out rule, determinism data, colour detector, grid, PNG"
      if not errors else "%d failures" % len(errors))
sys.exit(1 if errors else 0)
PY

# tools/readme_pictures.py: the class picture with the shipped class model, one row per class,
# each row the cells of `vqgpt sample --class K --num 8 --seed 1`.
VQGPT=$(realpath "$1")
mkdir -p pics
ok "readme_pictures classes" $PY "$tools/readme_pictures.py" --vqgpt "$VQGPT" --out pics --only fmnist_classes
ok "class 3, 8 samples" "$VQGPT" sample --class 3 --num 8 --seed 1 --out c3.png
check "the picture's row 3 is not class 3's samples" $PY - "$tools" pics/fmnist_classes.png c3.png <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import fmnist_folders as F
pic, grid = F.read_png(sys.argv[2]), F.read_png(sys.argv[3])
if pic.shape != (10 * 36 + 4, 8 * 36 + 4, 3):
    sys.exit(1)
for k in range(8):  # the grid has 3 columns, a border of 2; the picture a gap of 4
    cell = grid[2 + (k // 3) * 34:][:32, 2 + (k % 3) * 34:][:, :32]
    if not (pic[4 + 3 * 36:][:32, 4 + k * 36:][:, :32] == cell).all():
        sys.exit(1)
PY
NOFILES="pics/completion.png" ERR_PREFIX="readme_pictures.py: " bad "completion without photographs" "completion needs --photos" \
  $PY "$tools/readme_pictures.py" --vqgpt "$VQGPT" --out pics --only completion

finish cli_fmnist_tools
