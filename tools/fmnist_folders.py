#!/usr/bin/env python3
"""Fashion-MNIST image folders for training and evaluating vqgpt.

usage: fmnist_folders.py items --split train|test --out DIR [--count N] [--seed S]
       fmnist_folders.py pairs --split train|test --out DIR [--count N] [--seed S]
                               [--heldout only|exclude|all]

items: 32x32 RGB PNGs, the 28x28 item centred on black (2-pixel border), grey as R=G=B, one
  sub-folder per class, named so that sorted order is label order: 0_t-shirt ... 9_ankle-boot.
  Default --count: the whole split (a --count subset is drawn at random without repeats).
pairs: 32x64 RGB PNGs (height 32, width 64): item A centred in the left 32x32 cell, item B in
  the right one, each tinted with one of red, green, blue, yellow, white (pixel = grey * tint,
  rounded). Items and colours are drawn independently. Each NAME.png has a one-line caption
  NAME.txt, e.g. "a red sneaker and a blue bag" (templates: see TEMPLATES). The ten item pairs
  (left k, right (k+3) mod 10) are held out: --heldout exclude (default for train) never makes
  them, only makes nothing else (for evaluation), all does not filter (default for test).
  Default --count: the size of the split.
Both write labels.csv in DIR (one row per image). Output is deterministic for a --seed; the
folder is built next to DIR and renamed into place, so a failed run leaves no partial DIR.
Needs numpy (Debian: python3-numpy) and the Debian package dataset-fashion-mnist.
"""
import argparse
import csv
import gzip
import os
import shutil
import struct
import sys
import tempfile
import zlib

try:
    import numpy as np
except ImportError:  # Debian's python3-numpy serves /usr/bin/python3, maybe not the python3 on PATH
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") \
            and os.access("/usr/bin/python3", os.X_OK):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    # Also serves fmnist_eval.py, which imports this module first: name the script run.
    sys.exit("%s: needs numpy (Debian: apt-get install python3-numpy)" % os.path.basename(sys.argv[0]))

DATA_DIR = os.environ.get("FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
SPLIT_PREFIX = {"train": "train", "test": "t10k"}
ITEM_NAMES = ["t-shirt", "trousers", "pullover", "dress", "coat",
              "sandal", "shirt", "sneaker", "bag", "ankle boot"]
COLOURS = {  # name -> RGB tint multiplying the grey value
    "red": (1.0, 0.25, 0.25),
    "green": (0.25, 1.0, 0.25),
    "blue": (0.3, 0.45, 1.0),
    "yellow": (1.0, 1.0, 0.25),
    "white": (1.0, 1.0, 1.0),
}
COLOUR_NAMES = list(COLOURS)
# {a}/{b}: "colour item" of the left/right cell.
TEMPLATES = [
    "a {a} and a {b}",
    "a {b} to the right of a {a}",
    "{a} on the left, {b} on the right",
    "a {a} to the left of a {b}",
]
CELL = 32
PAD = (CELL - 28) // 2


def folder_name(label):
    return "%d_%s" % (label, ITEM_NAMES[label].replace(" ", "-"))


def heldout_right(left_label):
    """The right-hand label that is held out next to `left_label`."""
    return (np.asarray(left_label) + 3) % 10


def is_heldout(left_label, right_label):
    return np.asarray(right_label) == heldout_right(left_label)


def _read_idx(path, magic, dims):
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        sys.exit("%s: cannot read (%s); install the Debian package dataset-fashion-mnist"
                 % (path, e.strerror or e))
    head = 4 + 4 * dims
    if len(raw) < head or struct.unpack(">I", raw[:4])[0] != magic:
        sys.exit("%s: not an IDX file with magic 0x%08x" % (path, magic))
    shape = struct.unpack(">%dI" % dims, raw[4:head])
    if len(raw) != head + int(np.prod(shape)):
        sys.exit("%s: %d bytes, the header promises %d" % (path, len(raw), head + np.prod(shape)))
    return np.frombuffer(raw, np.uint8, offset=head).reshape(shape)


def load_split(split):
    """(images uint8 [n, 28, 28], labels int64 [n]) of 'train' or 'test'."""
    prefix = os.path.join(DATA_DIR, SPLIT_PREFIX[split])
    images = _read_idx(prefix + "-images-idx3-ubyte.gz", 0x803, 3)
    labels = _read_idx(prefix + "-labels-idx1-ubyte.gz", 0x801, 1).astype(np.int64)
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        sys.exit("%s: %s images of %s for %d labels"
                 % (prefix, images.shape[0], images.shape[1:], labels.shape[0]))
    return images, labels


def centred(items):
    """uint8 [n, 28, 28] -> uint8 [n, 32, 32] on black."""
    out = np.zeros((items.shape[0], CELL, CELL), np.uint8)
    out[:, PAD:PAD + 28, PAD:PAD + 28] = items
    return out


def tinted(grey, colour_ids):
    """uint8 [n, h, w] grey, colour indices [n] -> uint8 [n, h, w, 3] = round(grey * tint)."""
    tints = np.array([COLOURS[c] for c in COLOUR_NAMES], np.float64)[np.asarray(colour_ids)]
    rgb = grey[..., None].astype(np.float64) * tints[:, None, None, :]
    return np.floor(rgb + 0.5).astype(np.uint8)


def compose_pairs(items, left_idx, right_idx, left_colour, right_colour):
    """uint8 [n, 32, 64, 3]: item left_idx[i] tinted left_colour[i] left, likewise right."""
    cells = centred(items[np.concatenate([left_idx, right_idx])])
    n = len(left_idx)
    left = tinted(cells[:n], left_colour)
    right = tinted(cells[n:], right_colour)
    return np.concatenate([left, right], axis=2)


def caption(template_id, left_label, left_colour, right_label, right_colour):
    a = "%s %s" % (COLOUR_NAMES[left_colour], ITEM_NAMES[left_label])
    b = "%s %s" % (COLOUR_NAMES[right_colour], ITEM_NAMES[right_label])
    return TEMPLATES[template_id].format(a=a, b=b)


def draw_pairs(labels, count, heldout, rng):
    """Item indices (left, right) of `count` pairs under the held-out rule
    ('exclude', 'only' or 'all'); the left item is uniform over the split."""
    left = rng.integers(0, len(labels), count)
    by_label = [np.flatnonzero(labels == k) for k in range(10)]
    if heldout == "only":
        want = heldout_right(labels[left])
        right = np.empty(count, np.int64)
        for k in range(10):
            sel = np.flatnonzero(want == k)
            right[sel] = by_label[k][rng.integers(0, len(by_label[k]), len(sel))]
        return left, right
    right = rng.integers(0, len(labels), count)
    if heldout == "exclude":
        bad = np.flatnonzero(is_heldout(labels[left], labels[right]))
        while len(bad):  # redraw the right item only: the left stays uniform
            right[bad] = rng.integers(0, len(labels), len(bad))
            bad = bad[is_heldout(labels[left[bad]], labels[right[bad]])]
    return left, right


def png_bytes(rgb):
    """A PNG (8-bit RGB, no filter) of uint8 [h, w, 3]."""
    h, w, _ = rgb.shape
    rows = np.zeros((h, 1 + w * 3), np.uint8)  # filter byte 0 per row
    rows[:, 1:] = rgb.reshape(h, w * 3)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def _unfilter(kind, line, prev, bpp):
    """Undo one PNG row filter (uint8 arrays); see the PNG spec, section 9."""
    if kind == 0:
        return line
    if kind == 2:
        return line + prev  # uint8 arithmetic wraps mod 256 as the spec wants
    if kind == 1:
        return (np.cumsum(line.reshape(-1, bpp).astype(np.int64), 0) % 256).astype(np.uint8).ravel()
    if kind not in (3, 4):
        raise ValueError("unknown PNG filter type %d" % kind)
    out = bytearray(line.tobytes())
    up = prev.tobytes()
    for i in range(len(out)):
        a = out[i - bpp] if i >= bpp else 0
        b = up[i]
        if kind == 3:
            out[i] = (out[i] + ((a + b) >> 1)) & 255
        else:
            c = up[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out[i] = (out[i] + pred) & 255
    return np.frombuffer(bytes(out), np.uint8)


def read_png(path):
    """uint8 [h, w, 3] of an 8-bit grey, RGB or RGBA non-interlaced PNG (as stb and we write)."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("%s: not a PNG file" % path)
    pos, idat, head = 8, [], None
    while pos + 8 <= len(raw):
        size, kind = struct.unpack(">I4s", raw[pos:pos + 8])
        data = raw[pos + 8:pos + 8 + size]
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", data)
        elif kind == b"IDAT":
            idat.append(data)
        elif kind == b"IEND":
            break
        pos += 12 + size
    if head is None:
        raise ValueError("%s: PNG without IHDR" % path)
    w, h, depth, colour, _, _, interlace = head
    channels = {0: 1, 2: 3, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise ValueError("%s: only 8-bit grey/RGB/RGBA non-interlaced PNGs are read" % path)
    data = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    stride = 1 + w * channels
    if len(data) != h * stride:
        raise ValueError("%s: %d bytes of pixel data, %dx%d needs %d" % (path, len(data), w, h, h * stride))
    rows = data.reshape(h, stride)
    img = np.zeros((h, w * channels), np.uint8)
    prev = np.zeros(w * channels, np.uint8)
    for y in range(h):
        prev = img[y] = _unfilter(int(rows[y, 0]), rows[y, 1:], prev, channels)
    img = img.reshape(h, w, channels)
    return np.repeat(img, 3, 2) if channels == 1 else img[..., :3].copy()


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


class StagedDir:
    """Builds a folder under a temporary name next to `out` and renames it into place."""

    def __init__(self, out, force):
        self.out = os.path.abspath(out)
        if os.path.exists(self.out) and os.listdir(self.out) and not force:
            sys.exit("%s: exists and is not empty (give --force to replace it)" % out)
        parent = os.path.dirname(self.out)
        os.makedirs(parent, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix=".%s.partial-" % os.path.basename(self.out), dir=parent)

    def __enter__(self):
        return self.tmp

    def __exit__(self, kind, value, tb):
        if kind is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        os.chmod(self.tmp, 0o755)
        if os.path.exists(self.out):
            shutil.rmtree(self.out)
        os.rename(self.tmp, self.out)
        return False


def subset(n_total, count, rng):
    if count is None or count >= n_total:
        return np.arange(n_total)
    return np.sort(rng.choice(n_total, count, replace=False))


def make_items(args):
    images, labels = load_split(args.split)
    rng = np.random.default_rng(args.seed)
    chosen = subset(len(labels), args.count, rng)
    cells = centred(images[chosen])
    digits = len(str(len(labels) - 1))
    with StagedDir(args.out, args.force) as tmp:
        for k in range(10):
            os.mkdir(os.path.join(tmp, folder_name(k)))
        rows = []
        for j, i in enumerate(chosen):
            name = "%s/%0*d.png" % (folder_name(labels[i]), digits, i)
            write_file(os.path.join(tmp, name), png_bytes(np.repeat(cells[j][..., None], 3, 2)))
            rows.append((name, int(labels[i]), ITEM_NAMES[labels[i]], int(i)))
        with open(os.path.join(tmp, "labels.csv"), "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["file", "label", "item", "index"])
            out.writerows(rows)
    print("%s: %d items of the %s split" % (args.out, len(chosen), args.split), file=sys.stderr)


def make_pairs(args):
    images, labels = load_split(args.split)
    heldout = args.heldout or ("exclude" if args.split == "train" else "all")
    count = len(labels) if args.count is None else args.count
    rng = np.random.default_rng(args.seed)
    left, right = draw_pairs(labels, count, heldout, rng)
    left_colour = rng.integers(0, len(COLOUR_NAMES), count)
    right_colour = rng.integers(0, len(COLOUR_NAMES), count)
    template = rng.integers(0, len(TEMPLATES), count)
    digits = max(5, len(str(count - 1)))
    with StagedDir(args.out, args.force) as tmp:
        rows = []
        for start in range(0, count, 4096):  # bounded memory for large counts
            stop = min(count, start + 4096)
            pics = compose_pairs(images, left[start:stop], right[start:stop],
                                 left_colour[start:stop], right_colour[start:stop])
            for j in range(start, stop):
                ll, rl = int(labels[left[j]]), int(labels[right[j]])
                lc, rc, t = int(left_colour[j]), int(right_colour[j]), int(template[j])
                name = "%0*d" % (digits, j)
                text = caption(t, ll, lc, rl, rc)
                write_file(os.path.join(tmp, name + ".png"), png_bytes(pics[j - start]))
                write_file(os.path.join(tmp, name + ".txt"), (text + "\n").encode("utf-8"))
                rows.append((name + ".png", ll, rl, COLOUR_NAMES[lc], COLOUR_NAMES[rc], t,
                             int(left[j]), int(right[j]), text))
        with open(os.path.join(tmp, "labels.csv"), "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["file", "left_label", "right_label", "left_colour", "right_colour",
                          "template", "left_index", "right_index", "caption"])
            out.writerows(rows)
    print("%s: %d pairs of the %s split (held-out pairs: %s)"
          % (args.out, count, args.split, heldout), file=sys.stderr)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    sub = p.add_subparsers(dest="mode", required=True)
    for mode in ("items", "pairs"):
        s = sub.add_parser(mode, help="make the %s folder" % mode)
        s.add_argument("--split", choices=["train", "test"], default="train")
        s.add_argument("--out", required=True, help="output folder (created)")
        s.add_argument("--count", type=int, help="number of images (default: the split's size)")
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--force", action="store_true", help="replace a non-empty --out")
        if mode == "pairs":
            s.add_argument("--heldout", choices=["exclude", "only", "all"],
                           help="held-out pairs (left k, right (k+3)%%10): default exclude for "
                                "train, all for test")
    args = p.parse_args(argv)
    if args.count is not None and args.count < 1:
        p.error("--count must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    (make_items if args.mode == "items" else make_pairs)(args)


if __name__ == "__main__":
    main()
