#!/usr/bin/env python3
"""Measured quality of vqgpt's Fashion-MNIST models, next to the same measure on real data.

usage: fmnist_eval.py real  [--pairs N]
       fmnist_eval.py class --vqgpt BIN --gpt G --vqgan V [--num 100] [--classes 0,1,...]
       fmnist_eval.py class --png K:GRID.png [--png ...] --num N
       fmnist_eval.py text  --vqgpt BIN --gpt G --vqgan V [--prompts 3] [--num 16]
common: [--classifier PATH] [--seed S] [--threads 2] [--json OUT.json]
sampling pass-through (only when given): [--temperature T] [--top-k K] [--top-p P] [--cfg S]

A small CNN classifies 32x32 cells. It is trained once on the real training split (about 3
minutes on 2 cores) and cached in --classifier. Its input is the maximum over R, G, B: every
tint has one channel at 1.0, so this undoes the pairs' tinting exactly on real data and leaves
generated colours no say in the item. Training augments with shifts, brightness and noise.
The colour of a cell is the direction of the summed RGB of its bright pixels, nearest of the
five tints (about 100% right on real pairs; `real` prints it).

real:  the classifier on the real test split's items, and the pairs measure on real test
       pairs (seen and held-out item pairs, random colours).
class: for each class K, `vqgpt sample --class K --num N` (or a given grid PNG), each 32x32
       sample classified; accuracy per class and overall, next to the real test items'.
text:  for each caption template and for seen and held-out item pairs (left k, right (k+3)%10),
       --prompts random prompts, `vqgpt sample --prompt TEXT --num N` each; a 32x64 sample
       matches when its left item, right item and both colours are the prompt's. The share of
       matches per template and pair set, next to real test pairs composed for the same prompts.
       Also the samples per second of the vqgpt runs.
Needs numpy and PyTorch (Debian: python3-numpy python3-torch) and dataset-fashion-mnist.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

# fmnist_folders re-runs this script under /usr/bin/python3 when numpy is missing.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fmnist_folders as F  # noqa: E402
import numpy as np  # noqa: E402

DEFAULT_CLASSIFIER = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                                  "vqgpt", "fmnist_classifier.pt")
CLASSIFIER_VERSION = 1
GRID_BORDER = 2  # data/image.c vqgpt_image_grid
TINTS = np.array([F.COLOURS[c] for c in F.COLOUR_NAMES], np.float64)


def fail(msg):
    sys.exit("fmnist_eval.py: " + msg)


# ---- colour ---------------------------------------------------------------------------------

def detect_colours(cells):
    """Colour index per cell (uint8 [n, h, w, 3]), -1 for an empty (dark) cell: the summed RGB
    of the pixels at least half as bright as the cell's brightest, nearest tint by direction."""
    rgb = cells.astype(np.float64)
    bright = rgb.max(axis=3)
    peak = bright.reshape(len(cells), -1).max(axis=1)
    mask = bright >= 0.5 * peak[:, None, None]
    total = (rgb * mask[..., None]).sum(axis=(1, 2))
    direction = total / np.maximum(total.max(axis=1, keepdims=True), 1e-9)
    dist = ((direction[:, None, :] - TINTS[None, :, :]) ** 2).sum(axis=2)
    found = dist.argmin(axis=1)
    found[peak < 16] = -1
    return found


# ---- classifier -----------------------------------------------------------------------------

def grey_input(cells):
    """uint8 [n, 32, 32, 3] or [n, 32, 32] -> float32 [n, 1, 32, 32] in [0, 1] (max over RGB)."""
    g = cells.max(axis=3) if cells.ndim == 4 else cells
    return (g.astype(np.float32) / 255.0)[:, None]


def make_net():
    import torch.nn as nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 4 * 4, 128), nn.ReLU(),
        nn.Dropout(0.3), nn.Linear(128, 10))


def augment(x, gen):
    """Random shifts of up to 2 pixels, brightness 0.6..1 and a little noise, as generated
    samples may be off-centre, dimmer or grainy."""
    import torch
    n = x.shape[0]
    dy, dx = torch.randint(-2, 3, (2,), generator=gen).tolist()
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    x = x * (0.6 + 0.4 * torch.rand(n, 1, 1, 1, generator=gen))
    x = x + 0.03 * torch.randn(x.shape, generator=gen)
    return x.clamp(0, 1)


def train_classifier(path, epochs, threads):
    import torch
    import torch.nn.functional as tf
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    images, labels = F.load_split("train")
    x = torch.from_numpy(grey_input(F.centred(images)))
    y = torch.from_numpy(labels)
    net = make_net()
    steps = epochs * math.ceil(len(y) / 128)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    t0 = time.time()
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(y), generator=gen)
        total = 0.0
        for start in range(0, len(y), 128):
            idx = order[start:start + 128]
            loss = tf.cross_entropy(net(augment(x[idx], gen)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print("classifier epoch %d/%d: loss %.4f (%.0f s)" % (epoch + 1, epochs, total / len(y),
              time.time() - t0), file=sys.stderr)
    net.eval()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".classifier-", dir=os.path.dirname(os.path.abspath(path)))
    # Written through the open file: torch 1.13's zip writer refuses some temporary names.
    with os.fdopen(fd, "wb") as f:
        torch.save({"version": CLASSIFIER_VERSION, "state": net.state_dict()}, f)
    os.replace(tmp, path)
    print("classifier saved to %s" % path, file=sys.stderr)
    return net


def load_classifier(path, epochs, threads):
    import torch
    torch.set_num_threads(threads)
    if os.path.exists(path):
        saved = torch.load(path, map_location="cpu")
        if isinstance(saved, dict) and saved.get("version") == CLASSIFIER_VERSION:
            net = make_net()
            net.load_state_dict(saved["state"])
            return net.eval()
        print("%s: an older classifier, training it again" % path, file=sys.stderr)
    print("training the classifier (once; cached in %s)" % path, file=sys.stderr)
    return train_classifier(path, epochs, threads)


def classify(net, cells):
    """Label per 32x32 cell (uint8 [n, 32, 32, 3] or [n, 32, 32])."""
    import torch
    x = torch.from_numpy(grey_input(cells))
    out = []
    with torch.no_grad():
        for start in range(0, len(x), 1000):
            out.append(net(x[start:start + 1000]).argmax(1).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.int64)


# ---- grids and vqgpt ------------------------------------------------------------------------

def grid_columns(n):
    cols = math.isqrt(n)
    return min(n, cols if cols * cols == n else cols + 1)  # ceil(sqrt(n)) as cmd_sample.c


def split_grid(img, n, cell_h, cell_w, source):
    """The n cells of a `vqgpt sample --num n` image: one sample is the image itself, several
    are tiled in ceil(sqrt(n)) columns with a 2-pixel border (data/image.c vqgpt_image_grid)."""
    if n == 1:
        if img.shape[:2] != (cell_h, cell_w):
            fail("%s: a %dx%d image, expected %dx%d (WxH)" % (source, img.shape[1], img.shape[0],
                                                              cell_w, cell_h))
        return img[None]
    cols = grid_columns(n)
    rows = (n + cols - 1) // cols
    want = (rows * cell_h + (rows + 1) * GRID_BORDER, cols * cell_w + (cols + 1) * GRID_BORDER)
    if img.shape[:2] != want:
        fail("%s: a %dx%d grid, %d samples of %dx%d would make %dx%d (WxH)"
             % (source, img.shape[1], img.shape[0], n, cell_w, cell_h, want[1], want[0]))
    cells = []
    for k in range(n):
        oy = GRID_BORDER + (k // cols) * (cell_h + GRID_BORDER)
        ox = GRID_BORDER + (k % cols) * (cell_w + GRID_BORDER)
        cells.append(img[oy:oy + cell_h, ox:ox + cell_w])
    return np.stack(cells)


def sampling_flags(args):
    flags = []
    for name in ("temperature", "top_k", "top_p", "cfg"):
        value = getattr(args, name)
        if value is not None:
            flags += ["--" + name.replace("_", "-"), str(value)]
    return flags


class Sampler:
    """Runs `vqgpt sample` and returns its samples as uint8 cells; times the runs."""

    def __init__(self, args, workdir):
        for opt in ("vqgpt", "gpt", "vqgan"):
            if not getattr(args, opt):
                fail("--%s is required to sample (or give --png for class mode)" % opt)
        self.args, self.workdir = args, workdir
        self.seconds, self.samples, self.runs = 0.0, 0, 0

    def __call__(self, condition, seed, cell_h, cell_w, keep_name):
        a = self.args
        out = os.path.join(self.workdir, "sample.png")
        cmd = [a.vqgpt, "sample", "--gpt", a.gpt, "--vqgan", a.vqgan, *condition,
               "--num", str(a.num), "--seed", str(seed), "--out", out, *sampling_flags(a)]
        t0 = time.time()
        run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.seconds += time.time() - t0
        if run.returncode != 0:
            last = (run.stderr.strip().splitlines() or ["no message"])[-1]
            fail("%s failed (exit %d): %s" % (" ".join(cmd), run.returncode, last))
        self.samples += a.num
        self.runs += 1
        if a.keep:
            os.makedirs(a.keep, exist_ok=True)
            os.replace(out, os.path.join(a.keep, keep_name))
            out = os.path.join(a.keep, keep_name)
        return split_grid(F.read_png(out), a.num, cell_h, cell_w, out)

    def rate(self):
        return {"samples": self.samples, "runs": self.runs, "seconds": round(self.seconds, 2),
                "samples_per_second": round(self.samples / self.seconds, 3) if self.seconds else None}


# ---- measures -------------------------------------------------------------------------------

def pair_measure(net, pics, left_label, right_label, left_colour, right_colour):
    """Per-sample booleans: left item, right item, left colour, right colour, all four."""
    left, right = pics[:, :, :F.CELL], pics[:, :, F.CELL:2 * F.CELL]
    m = {"left_item": classify(net, left) == left_label,
         "right_item": classify(net, right) == right_label,
         "left_colour": detect_colours(left) == left_colour,
         "right_colour": detect_colours(right) == right_colour}
    m["all"] = m["left_item"] & m["right_item"] & m["left_colour"] & m["right_colour"]
    return m


def summarize(measure):
    return {k: round(float(np.mean(v)), 4) for k, v in measure.items()}


def real_item_accuracy(net):
    images, labels = F.load_split("test")
    pred = classify(net, F.centred(images))
    per_class = [float(np.mean(pred[labels == k] == k)) for k in range(10)]
    return float(np.mean(pred == labels)), per_class


def random_specs(count, heldout, rng):
    """(left label, right label, left colour, right colour) of `count` random prompts;
    heldout: right = (left+3)%10, else any other right label."""
    left = rng.integers(0, 10, count)
    right = F.heldout_right(left) if heldout else (left + 4 + rng.integers(0, 9, count)) % 10
    return left, right, rng.integers(0, len(F.COLOUR_NAMES), count), \
        rng.integers(0, len(F.COLOUR_NAMES), count)


def real_pairs_for(images, labels, specs, per_spec, rng):
    """Real pairs composed for the given (repeated per_spec times) label/colour specs."""
    by_label = [np.flatnonzero(labels == k) for k in range(10)]
    ll, rl, lc, rc = (np.repeat(s, per_spec) for s in specs)
    pick = lambda want: np.array([by_label[k][rng.integers(len(by_label[k]))] for k in want])
    pics = F.compose_pairs(images, pick(ll), pick(rl), lc, rc)
    return pics, ll, rl, lc, rc


def pct(x):
    return "%5.1f%%" % (100 * x)


# ---- modes ----------------------------------------------------------------------------------

def run_real(args, net):
    acc, per_class = real_item_accuracy(net)
    print("real test items (10000, 32x32 centred): accuracy %s" % pct(acc))
    for k in range(10):
        print("  %-11s %s" % (F.ITEM_NAMES[k], pct(per_class[k])))
    images, labels = F.load_split("test")
    rng = np.random.default_rng(args.seed)
    result = {"real_items": {"accuracy": acc, "per_class": per_class}, "real_pairs": {}}
    print("real test pairs (%d each, random colours):" % args.pairs)
    print("  %-8s %10s %10s %10s %10s %10s" % ("pairs", "left item", "right item", "left col",
                                               "right col", "all match"))
    for heldout in ("exclude", "only"):
        li, ri = F.draw_pairs(labels, args.pairs, heldout, rng)
        lc = rng.integers(0, len(F.COLOUR_NAMES), args.pairs)
        rc = rng.integers(0, len(F.COLOUR_NAMES), args.pairs)
        pics = F.compose_pairs(images, li, ri, lc, rc)
        s = summarize(pair_measure(net, pics, labels[li], labels[ri], lc, rc))
        name = "seen" if heldout == "exclude" else "held-out"
        result["real_pairs"][name] = s
        print("  %-8s %10s %10s %10s %10s %10s" % (name, pct(s["left_item"]), pct(s["right_item"]),
              pct(s["left_colour"]), pct(s["right_colour"]), pct(s["all"])))
    return result


def parse_classes(text):
    try:
        classes = [int(c) for c in text.split(",")]
    except ValueError:
        fail("--classes expects ids such as 0,1,2 (got '%s')" % text)
    if any(c < 0 or c > 9 for c in classes):
        fail("--classes: ids are 0..9 (got '%s')" % text)
    return classes


def run_class(args, net):
    real_acc, real_per_class = real_item_accuracy(net)
    grids = {}
    for spec in args.png or []:
        k, sep, path = spec.partition(":")
        if not sep or not k.isdigit() or int(k) > 9:
            fail("--png expects K:GRID.png with a class id K in 0..9 (got '%s')" % spec)
        grids[int(k)] = path
    with tempfile.TemporaryDirectory(prefix="fmnist_eval.") as work:
        sampler = None if grids else Sampler(args, work)
        classes = sorted(grids) if grids else parse_classes(args.classes)
        result = {"per_class": {}, "real_items": {"accuracy": real_acc}}
        print("%-11s %9s %9s" % ("class", "samples", "real"))
        hits = 0
        for k in classes:
            if sampler:
                cells = sampler(["--class", str(k)], args.seed + k, F.CELL, F.CELL,
                                "class_%d.png" % k)
            else:
                try:
                    img = F.read_png(grids[k])
                except (OSError, ValueError) as e:
                    fail(str(e))
                cells = split_grid(img, args.num, F.CELL, F.CELL, grids[k])
            acc = float(np.mean(classify(net, cells) == k))
            hits += acc * len(cells)
            result["per_class"][F.ITEM_NAMES[k]] = acc
            print("%-11s %9s %9s" % (F.ITEM_NAMES[k], pct(acc), pct(real_per_class[k])))
        overall = hits / (len(classes) * args.num)
        real_overall = float(np.mean([real_per_class[k] for k in classes]))
        result["accuracy"], result["real_items"]["accuracy_same_classes"] = overall, real_overall
        print("%-11s %9s %9s" % ("overall", pct(overall), pct(real_overall)))
        if sampler:
            result["sampling"] = sampler.rate()
            print_rate(result["sampling"])
    return result


def print_rate(rate):
    print("vqgpt: %d samples in %d runs, %.1f s: %.2f samples/s (model loading included)"
          % (rate["samples"], rate["runs"], rate["seconds"], rate["samples_per_second"] or 0))


def run_text(args, net):
    images, labels = F.load_split("test")
    rng = np.random.default_rng(args.seed)
    result = {"samples": {}, "real": {}}
    rows = []
    with tempfile.TemporaryDirectory(prefix="fmnist_eval.") as work:
        sampler = Sampler(args, work)
        for heldout, set_name in ((False, "seen"), (True, "held-out")):
            set_gen, set_real = [], []
            for t in range(len(F.TEMPLATES)):
                specs = random_specs(args.prompts, heldout, rng)
                gen = {}
                for i in range(args.prompts):
                    ll, rl, lc, rc = (int(s[i]) for s in specs)
                    prompt = F.caption(t, ll, lc, rl, rc)
                    pics = sampler(["--prompt", prompt], args.seed + 1000 * t + i,
                                   F.CELL, 2 * F.CELL,
                                   "%s_t%d_%02d.png" % (set_name, t, i))
                    m = pair_measure(net, pics, ll, rl, lc, rc)
                    for key, v in m.items():
                        gen.setdefault(key, []).append(v)
                    print("  %-8s t%d %-52s %s" % (set_name, t, '"%s"' % prompt, pct(np.mean(m["all"]))),
                          file=sys.stderr)
                gen = {k: np.concatenate(v) for k, v in gen.items()}
                real = pair_measure(net, *real_pairs_for(images, labels, specs, args.num, rng))
                set_gen.append(gen)
                set_real.append(real)
                rows.append((set_name, "t%d" % t, summarize(gen), summarize(real)))
            merged = lambda parts: {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            rows.append((set_name, "all", summarize(merged(set_gen)), summarize(merged(set_real))))
        result["sampling"] = sampler.rate()
    print("share of samples whose left item, right item and both colours all match the prompt")
    print("(%d prompts per template and pair set, %d samples each; real = real test pairs "
          "composed for the same prompts)" % (args.prompts, args.num))
    print("%-8s %-8s %9s %9s   %s" % ("pairs", "template", "samples", "real",
                                      "samples: left item / right item / left col / right col"))
    for set_name, t, gen, real in rows:
        result["samples"].setdefault(set_name, {})[t] = gen
        result["real"].setdefault(set_name, {})[t] = real
        print("%-8s %-8s %9s %9s   %s / %s / %s / %s" % (
            set_name, t, pct(gen["all"]), pct(real["all"]), pct(gen["left_item"]),
            pct(gen["right_item"]), pct(gen["left_colour"]), pct(gen["right_colour"])))
    for t, template in enumerate(F.TEMPLATES):
        print("  t%d: %s" % (t, template.format(a="<left>", b="<right>")))
    print_rate(result["sampling"])
    return result


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    sub = p.add_subparsers(dest="mode", required=True)
    for mode, text in (("real", "the classifier and colour detector on real test data"),
                       ("class", "class-conditional samples"), ("text", "text-conditional samples")):
        s = sub.add_parser(mode, help=text)
        s.add_argument("--classifier", default=DEFAULT_CLASSIFIER,
                       help="cached classifier, trained when missing (default %(default)s)")
        s.add_argument("--epochs", type=int, default=6, help="classifier training epochs")
        s.add_argument("--threads", type=int, default=2)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--json", help="also write the figures to this JSON file")
        if mode == "real":
            s.add_argument("--pairs", type=int, default=5000, help="real pairs per pair set")
            continue
        s.add_argument("--vqgpt", help="the vqgpt binary")
        s.add_argument("--gpt", help="GPT model")
        s.add_argument("--vqgan", help="VQGAN model")
        s.add_argument("--num", type=int, default=100 if mode == "class" else 16,
                       help="samples per vqgpt run (default %(default)s)")
        s.add_argument("--keep", help="keep the sample PNGs in this folder")
        s.add_argument("--temperature", type=float)
        s.add_argument("--top-k", type=int)
        s.add_argument("--top-p", type=float)
        s.add_argument("--cfg", type=float)
        if mode == "class":
            s.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
            s.add_argument("--png", action="append",
                           help="K:GRID.png, a grid of --num samples of class K (no sampling)")
        else:
            s.add_argument("--prompts", type=int, default=3,
                           help="random prompts per template and pair set (default %(default)s)")
    args = p.parse_args(argv)
    if getattr(args, "num", 1) < 1 or getattr(args, "prompts", 1) < 1 or getattr(args, "pairs", 1) < 1:
        p.error("--num, --prompts and --pairs must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        fail("needs PyTorch (Debian: apt-get install python3-torch)")
    net = load_classifier(args.classifier, args.epochs, args.threads)
    result = {"real": run_real, "class": run_class, "text": run_text}[args.mode](args, net)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
