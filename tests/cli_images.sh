#!/usr/bin/env bash
# Image input through the CLI: PNG layouts decode to the pixels the header promises (alpha on
# white, grey and palette to RGB, 16-bit scaled), so they encode to the same codes as their
# plain RGB twin; other formats, broken files and non-regular inputs (a FIFO must not hang)
# give one error line; training folders with link loops count each image once, skip a bad
# file with a warning, and stop with a clear error when most files are bad.
set -u
VQGPT=$1
FX=$2
MODEL=$FX/vqgan_tiny.safetensors
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

# expect_error NAME NEEDLE OUTFILE CMD...: non-zero exit (not a signal, not the timeout), one
# stderr line containing NEEDLE, no OUTFILE left behind.
expect_error() {
  local name=$1 needle=$2 out=$3
  shift 3
  timeout 20 "$@" >/dev/null 2>"$T/stderr"
  local rc=$?
  if [ $rc -eq 0 ] || [ $rc -ge 124 ]; then
    bad "$name: exit status $rc $(cat "$T/stderr")"
  elif [ "$(wc -l <"$T/stderr")" -ne 1 ]; then
    bad "$name: expected one error line: $(cat "$T/stderr")"
  elif ! grep -qF -- "$needle" "$T/stderr"; then
    bad "$name: error lacks '$needle': $(cat "$T/stderr")"
  elif [ -n "$out" ] && ls "$out"* >/dev/null 2>&1; then
    bad "$name: output file left behind"
  else
    ok
  fi
}

# --- test images (PNG written here with zlib) ----------------------------------------------
python3 - "$T" <<'PY'
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
  if "$VQGPT" encode --vqgan "$MODEL" --image "$T/$1.png" --out "$T/$1.npy" 2>/dev/null &&
     "$VQGPT" encode --vqgan "$MODEL" --image "$T/$2.png" --out "$T/$2.npy" 2>/dev/null &&
     cmp -s "$T/$1.npy" "$T/$2.npy"; then ok; else bad "$1.png does not encode as $2.png"; fi
done
# The check can tell: the hidden red, were it used, would give other codes.
"$VQGPT" encode --vqgan "$MODEL" --image "$T/red_twin.png" --out "$T/red_twin.npy" 2>/dev/null
cmp -s "$T/alpha.npy" "$T/red_twin.npy" && bad "the hidden red pixels make no difference to the codes" || ok

# --- refused inputs -------------------------------------------------------------------------
O=$T/o.npy
expect_error "Softimage PIC named .png" "x.png: not a PNG or JPEG file (looks like a Softimage PIC image)" "$O" "$VQGPT" encode --vqgan "$MODEL" --image "$T/x.png" --out "$O"
expect_error "PPM with a negative width" "neg.ppm: not a PNG or JPEG file (looks like a PNM" "$O" "$VQGPT" encode --vqgan "$MODEL" --image "$T/neg.ppm" --out "$O"
expect_error "truncated PNG" "trunc.png: corrupt or truncated PNG: unexpected end of file" "$O" "$VQGPT" encode --vqgan "$MODEL" --image "$T/trunc.png" --out "$O"
expect_error "PNG without IEND" "noend.png: corrupt or truncated PNG" "$O" "$VQGPT" encode --vqgan "$MODEL" --image "$T/noend.png" --out "$O"
expect_error "directory as image" "is a directory, not a regular file" "$O" "$VQGPT" encode --vqgan "$MODEL" --image "$T" --out "$O"
mkfifo "$T/fifo.png" "$T/fifo.safetensors" "$T/fifo.npy"
expect_error "FIFO as image" "fifo.png: is a named pipe, not a regular file" "$O" "$VQGPT" encode --vqgan "$MODEL" --image "$T/fifo.png" --out "$O"
expect_error "FIFO as model" "fifo.safetensors: is a named pipe" "$O" "$VQGPT" encode --vqgan "$T/fifo.safetensors" --image "$T/rgb8.png" --out "$O"
expect_error "FIFO as codes" "fifo.npy: is a named pipe" "$T/o.png" "$VQGPT" decode --vqgan "$MODEL" --codes "$T/fifo.npy" --out "$T/o.png"
expect_error "device as image" "/dev/null: is a character device" "$O" "$VQGPT" reconstruct --vqgan "$MODEL" --image /dev/null --out "$T/o.png"

# --- training folders -----------------------------------------------------------------------
TRAIN=(--size 32 --config tiny --steps 1 --batch 1 --val 1 --log-every 1 --sample-every 100)
make_images() {  # make_images DIR N: N distinct PNGs
  mkdir -p "$1"
  for ((k = 0; k < $2; k++)); do cp "$FX/photos/photo$((k % 6)).png" "$1/img$k.png"; done
}
# Link loops, a self-link, a second path to a folder and to an image: each image once.
make_images "$T/loops" 4
make_images "$T/loops/sub" 1
ln -s . "$T/loops/self"
ln -s .. "$T/loops/sub/up"
ln -s loop2 "$T/loops/loop1"
ln -s loop1 "$T/loops/loop2"
ln -s sub "$T/loops/zsub"
ln -s img0.png "$T/loops/link.png"
if timeout 60 "$VQGPT" train-vqgan --data "$T/loops" "${TRAIN[@]}" --out "$T/l.safetensors" 2>"$T/log"; then ok; else bad "loops: $(cat "$T/log")"; fi
grep -q "loops: 5 images (4 train, 1 validation)" "$T/log" && ok || bad "loops: images not counted once: $(cat "$T/log")"
grep -q "1 more path (links) to images already listed" "$T/log" && ok || bad "loops: duplicate not reported: $(cat "$T/log")"

# One bad file (and a FIFO named .png) among many: skipped with a warning, the run goes on.
make_images "$T/onebad" 18
cp "$T/x.png" "$T/onebad/pic.png"
mkfifo "$T/onebad/pipe.png"
if timeout 60 "$VQGPT" train-vqgan --data "$T/onebad" "${TRAIN[@]}" --out "$T/b.safetensors" 2>"$T/log"; then ok; else bad "one bad file stopped the run: $(cat "$T/log")"; fi
grep -q "warning: skipped $T/onebad/pic.png: not a PNG or JPEG file (looks like a Softimage PIC image)" "$T/log" && ok || bad "no warning for pic.png: $(cat "$T/log")"
grep -q "warning: skipped $T/onebad/pipe.png: is a named pipe, not a regular file" "$T/log" && ok || bad "no warning for pipe.png: $(cat "$T/log")"
grep -q "onebad: skipped 2 of 20 image files that cannot be read" "$T/log" && ok || bad "skipped files not counted: $(cat "$T/log")"
grep -q "onebad: 18 images" "$T/log" && ok || bad "wrong image count: $(cat "$T/log")"
# train-gpt too; its code cache (one grid per readable image) is reused by the next run.
GPT=(--n-layer 1 --n-head 2 --n-embd 16 --batch 2 --steps 1 --val-fraction 0 --log-every 1)
if timeout 60 "$VQGPT" train-gpt --vqgan "$MODEL" --data "$T/onebad" "${GPT[@]}" --out "$T/g.safetensors" 2>"$T/log"; then ok; else bad "train-gpt, one bad file: $(cat "$T/log")"; fi
grep -q "warning: skipped $T/onebad/pic.png" "$T/log" && grep -q "encoding: 18/18 crops" "$T/log" && ok || bad "train-gpt: $(cat "$T/log")"
if timeout 60 "$VQGPT" train-gpt --vqgan "$MODEL" --data "$T/onebad" "${GPT[@]}" --out "$T/g.safetensors" --overwrite 2>"$T/log"; then ok; else bad "train-gpt rerun: $(cat "$T/log")"; fi
grep -q "reusing cached codes" "$T/log" && ok || bad "train-gpt re-encoded a folder with a skipped file: $(cat "$T/log")"

# Mostly bad: a clear error, naming the share and a file.
make_images "$T/mostbad" 2
cp "$T/x.png" "$T/mostbad/a.png"
cp "$T/neg.ppm" "$T/mostbad/b.png"
cp "$T/trunc.png" "$T/mostbad/c.png"
timeout 60 "$VQGPT" train-vqgan --data "$T/mostbad" "${TRAIN[@]}" --out "$T/m.safetensors" >/dev/null 2>"$T/log"
rc=$?
last=$(tail -1 "$T/log")
if [ $rc -ne 0 ] && [ $rc -lt 124 ] && [[ "$last" == "vqgpt train-vqgan: $T/mostbad: 3 of 5 image files cannot be read (more than 10%)"* ]] && [[ "$last" == *"a.png"* ]]; then ok; else bad "mostly bad folder (exit $rc): $(cat "$T/log")"; fi
[ ! -e "$T/m.safetensors" ] && ok || bad "a failed run left a model"
timeout 60 "$VQGPT" train-gpt --vqgan "$MODEL" --data "$T/mostbad" "${GPT[@]}" --out "$T/mg.safetensors" >/dev/null 2>"$T/log"
rc=$?
last=$(tail -1 "$T/log")
if [ $rc -ne 0 ] && [ $rc -lt 124 ] && [[ "$last" == "vqgpt train-gpt: $T/mostbad: 3 of 5 image files cannot be read"* ]]; then ok; else bad "train-gpt, mostly bad folder (exit $rc): $(cat "$T/log")"; fi
[ ! -e "$T/mg.safetensors" ] && ok || bad "a failed train-gpt run left a model"

echo "cli_images: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
