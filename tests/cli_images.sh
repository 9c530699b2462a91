#!/usr/bin/env bash
# Image input through the CLI: PNG layouts decode to the pixels the header promises (alpha on
# white, grey and palette to RGB, 16-bit scaled), so they encode to the same codes as their
# plain RGB twin; other formats, broken files and non-regular inputs (a FIFO must not hang)
# give one error line; training folders with link loops count each image once, skip a bad
# file with a warning, and stop with a clear error when most files are bad.
# Usage: cli_images.sh <vqgpt binary> <fixtures dir>
set -uo pipefail
VQGPT=$(realpath "$1")
FX=$(realpath "$2")
MODEL=$FX/vqgan_tiny.safetensors
source "$(dirname "$(realpath "$0")")/lib.sh"
# Files are given by full path ($TMP/...) where the error or warning must name them as given.

# --- test images (PNG written here with zlib) ----------------------------------------------
$PY - . <<'PY'
import struct, sys, zlib
d = sys.argv[1]
W = H = 16

def png(name, color, depth, rows, plte=b"", trns=b""):
    chunk = lambda t, b: struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, depth, color, 0, 0, 0))
    if plte: data += chunk(b"PLTE", plte)
    if trns: data += chunk(b"tRNS", trns)
    data += chunk(b"IDAT", zlib.compress(b"".join(b"\0" + r for r in rows))) + chunk(b"IEND", b"")
    open(f"{d}/{name}", "wb").write(data)

px = [[((x * 16 + c * 70) % 256, (y * 16 + c * 30) % 256, (x * y + c * 90) % 256)[c] for c in range(3)]
      for y in range(H) for x in range(W)]
hidden = lambda x, y: (x + y) % 3 == 0
rgb = lambda f: [bytes(v for x in range(W) for v in f(x, y)) for y in range(H)]
# RGBA with transparent pixels hiding pure red, and its twin: those pixels white.
png("alpha.png", 6, 8, [bytes(v for x in range(W) for v in ((255, 0, 0, 0) if hidden(x, y) else (*px[y * W + x], 255))) for y in range(H)])
png("alpha_twin.png", 2, 8, rgb(lambda x, y: (255, 255, 255) if hidden(x, y) else px[y * W + x]))
png("red_twin.png", 2, 8, rgb(lambda x, y: (255, 0, 0) if hidden(x, y) else px[y * W + x]))
# Grey and its RGB twin.
g = lambda x, y: (x * 13 + y * 7) % 256
png("grey.png", 0, 8, [bytes(g(x, y) for x in range(W)) for y in range(H)])
png("grey_twin.png", 2, 8, rgb(lambda x, y: (g(x, y),) * 3))
# Palette (entry 3 transparent) and its twin.
pal = [(200, 10, 10), (10, 200, 10), (10, 10, 200), (123, 45, 67)]
i = lambda x, y: (x // 4 + y // 4) % 4
png("palette.png", 3, 8, [bytes(i(x, y) for x in range(W)) for y in range(H)], b"".join(bytes(p) for p in pal), b"\xff\xff\xff\x00")
png("palette_twin.png", 2, 8, rgb(lambda x, y: (255, 255, 255) if i(x, y) == 3 else pal[i(x, y)]))
# 16-bit and its 8-bit twin (v * 257 scales back to v exactly).
png("rgb16.png", 2, 16, [b"".join(struct.pack(">H", v * 257) for x in range(W) for v in px[y * W + x]) for y in range(H)])
png("rgb8.png", 2, 8, rgb(lambda x, y: px[y * W + x]))
# Hostile files.
pic = bytearray(128); pic[0:4] = b"\x53\x80\xf6\x34"; pic[88:92] = b"PICT"
open(f"{d}/x.png", "wb").write(pic)
open(f"{d}/neg.ppm", "wb").write(b"P6 -5 3 255\n" + bytes(45))
full = open(f"{d}/rgb8.png", "rb").read()
open(f"{d}/trunc.png", "wb").write(full[: len(full) // 2])
open(f"{d}/noend.png", "wb").write(full[:-12])
PY

# --- layouts decode as documented: same codes as the RGB twin ------------------------------
for pair in "alpha alpha_twin" "grey grey_twin" "palette palette_twin" "rgb16 rgb8"; do
  set -- $pair
  ok "encode $1.png" "$VQGPT" encode --vqgan "$MODEL" --image "$1.png" --out "$1.npy"
  ok "encode $2.png" "$VQGPT" encode --vqgan "$MODEL" --image "$2.png" --out "$2.npy"
  check "$1.png does not encode as $2.png" cmp -s "$1.npy" "$2.npy"
done
# The check can tell: the hidden red, were it used, would give other codes.
ok "encode red_twin.png" "$VQGPT" encode --vqgan "$MODEL" --image red_twin.png --out red_twin.npy
check "the hidden red pixels make no difference to the codes" ! cmp -s alpha.npy red_twin.npy

# --- refused inputs: under a timeout (a FIFO must not hang) ---------------------------------
NOFILES="o.npy* o.png*"
bad "Softimage PIC named .png" "x.png: not a PNG or JPEG file (looks like a Softimage PIC image)" timeout 20 "$VQGPT" encode --vqgan "$MODEL" --image "$TMP/x.png" --out o.npy
bad "PPM with a negative width" "neg.ppm: not a PNG or JPEG file (looks like a PNM" timeout 20 "$VQGPT" encode --vqgan "$MODEL" --image "$TMP/neg.ppm" --out o.npy
bad "truncated PNG" "trunc.png: corrupt or truncated PNG: unexpected end of file" timeout 20 "$VQGPT" encode --vqgan "$MODEL" --image "$TMP/trunc.png" --out o.npy
bad "PNG without IEND" "noend.png: corrupt or truncated PNG" timeout 20 "$VQGPT" encode --vqgan "$MODEL" --image "$TMP/noend.png" --out o.npy
bad "directory as image" "is a directory, not a regular file" timeout 20 "$VQGPT" encode --vqgan "$MODEL" --image "$TMP" --out o.npy
mkfifo fifo.png fifo.safetensors fifo.npy
bad "FIFO as image" "fifo.png: is a named pipe, not a regular file" timeout 20 "$VQGPT" encode --vqgan "$MODEL" --image "$TMP/fifo.png" --out o.npy
bad "FIFO as model" "fifo.safetensors: is a named pipe" timeout 20 "$VQGPT" encode --vqgan "$TMP/fifo.safetensors" --image "$TMP/rgb8.png" --out o.npy
bad "FIFO as codes" "fifo.npy: is a named pipe" timeout 20 "$VQGPT" decode --vqgan "$MODEL" --codes "$TMP/fifo.npy" --out o.png
bad "device as image" "/dev/null: is a character device" timeout 20 "$VQGPT" reconstruct --vqgan "$MODEL" --image /dev/null --out o.png

# --- training folders -----------------------------------------------------------------------
TRAIN=(--size 32 --config tiny --steps 1 --batch 1 --val 1 --log-every 1 --sample-every 100)
make_images() {  # make_images DIR N: N distinct PNGs
  mkdir -p "$1"
  for ((k = 0; k < $2; k++)); do cp "$FX/photos/photo$((k % 6)).png" "$1/img$k.png"; done
}
# Link loops, a self-link, a second path to a folder and to an image: each image once.
make_images loops 4
make_images loops/sub 1
ln -s . loops/self
ln -s .. loops/sub/up
ln -s loop2 loops/loop1
ln -s loop1 loops/loop2
ln -s sub loops/zsub
ln -s img0.png loops/link.png
ok "loops" timeout 60 "$VQGPT" train-vqgan --data "$TMP/loops" "${TRAIN[@]}" --out l.safetensors
check "loops: images not counted once: $(cat err.txt)" grep -q "loops: 5 images (4 train, 1 validation)" err.txt
check "loops: duplicate not reported: $(cat err.txt)" grep -q "1 more path (links) to images already listed" err.txt

# One bad file (and a FIFO named .png) among many: skipped with a warning, the run goes on.
make_images onebad 18
cp x.png onebad/pic.png
mkfifo onebad/pipe.png
ok "one bad file stopped the run" timeout 60 "$VQGPT" train-vqgan --data "$TMP/onebad" "${TRAIN[@]}" --out b.safetensors
check "no warning for pic.png: $(cat err.txt)" grep -q "warning: skipped $TMP/onebad/pic.png: not a PNG or JPEG file (looks like a Softimage PIC image)" err.txt
check "no warning for pipe.png: $(cat err.txt)" grep -q "warning: skipped $TMP/onebad/pipe.png: is a named pipe, not a regular file" err.txt
check "skipped files not counted: $(cat err.txt)" grep -q "onebad: skipped 2 of 20 image files that cannot be read" err.txt
check "wrong image count: $(cat err.txt)" grep -q "onebad: 18 images" err.txt
# train-gpt too; its code cache (one grid per readable image) is reused by the next run.
GPT=(--n-layer 1 --n-head 2 --n-embd 16 --batch 2 --steps 1 --val-fraction 0 --log-every 1)
ok "train-gpt, one bad file" timeout 60 "$VQGPT" train-gpt --vqgan "$MODEL" --data "$TMP/onebad" "${GPT[@]}" --out g.safetensors
check "train-gpt: no warning for pic.png: $(cat err.txt)" grep -q "warning: skipped $TMP/onebad/pic.png" err.txt
check "train-gpt: not 18 crops encoded: $(cat err.txt)" grep -q "encoding: 18/18 crops" err.txt
ok "train-gpt rerun" timeout 60 "$VQGPT" train-gpt --vqgan "$MODEL" --data "$TMP/onebad" "${GPT[@]}" --out g.safetensors --overwrite
check "train-gpt re-encoded a folder with a skipped file: $(cat err.txt)" grep -q "reusing cached codes" err.txt

# Mostly bad: a clear error (after the listing's warnings), naming the share and a file.
make_images mostbad 2
cp x.png mostbad/a.png
cp neg.ppm mostbad/b.png
cp trunc.png mostbad/c.png
NOFILES=""
ERR_PREFIX="vqgpt train-vqgan: $TMP/mostbad: 3 of 5 image files cannot be read (more than 10%)" \
  bad_last "mostly bad folder" "a.png" timeout 60 "$VQGPT" train-vqgan --data "$TMP/mostbad" "${TRAIN[@]}" --out m.safetensors
check "a failed run left a model" [ ! -e m.safetensors ]
ERR_PREFIX="vqgpt train-gpt: $TMP/mostbad: 3 of 5 image files cannot be read" \
  bad_last "train-gpt, mostly bad folder" "a.png" timeout 60 "$VQGPT" train-gpt --vqgan "$MODEL" --data "$TMP/mostbad" "${GPT[@]}" --out mg.safetensors
check "a failed train-gpt run left a model" [ ! -e mg.safetensors ]

finish cli_images
