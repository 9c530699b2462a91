#!/usr/bin/env bash
# End-to-end stage-1 commands: encode/decode/reconstruct on the fixtures, and every kind of
# bad input answered by one error line naming the file, a non-zero exit, and no output file.
# Usage: cli_vqgan.sh <vqgpt binary> <fixtures dir>
set -uo pipefail
VQGPT=$(realpath "$1")
FX=$(realpath "$2")
HERE=$(dirname "$(realpath "$0")")
MODEL=$FX/vqgan_tiny.safetensors
source "$HERE/lib.sh"
# Files are given by full path ($TMP/...) where the error must name them as given.

# --- happy paths ---------------------------------------------------------------------------
ok "encode" "$VQGPT" encode --vqgan "$MODEL" --image "$FX/vqgan_tiny_input1.png" --out c1.npy
check "encoded codes differ from the reference" $PY - c1.npy "$FX/vqgan_tiny_io.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
assert raw[:6] == b"\x93NUMPY", "not npy"
hl = struct.unpack("<H", raw[8:10])[0]
hdr = raw[10:10 + hl].decode()
assert "'<i4'" in hdr and "(8, 12)" in hdr, hdr
codes = list(struct.unpack("<96i", raw[10 + hl:]))
st = open(sys.argv[2], "rb").read()
n = struct.unpack("<Q", st[:8])[0]
h = json.loads(st[8:8 + n])
t = h["case1.indices"]
b, e = t["data_offsets"]
fmt = "<96i" if t["dtype"] == "I32" else "<96q"
ref = list(struct.unpack(fmt, st[8 + n + b:8 + n + e]))
assert codes == ref, (codes, ref)
PY
ok "decode" "$VQGPT" decode --vqgan "$MODEL" --codes c1.npy --out d1.png
check "decoded PNG is $(png_size d1.png), not 48x32" [ "$(png_size d1.png)" = 48x32 ]
ok "reconstruct" "$VQGPT" reconstruct --vqgan "$MODEL" --image "$FX/vqgan_tiny_input0.png" --out r0.png
check "reconstruct reports no PSNR" grep -q PSNR err.txt
# A 50x37 image: rejected as it is, accepted with --crop (48x36) and --resize 32 (43x32 -> 40x32).
$PY - odd.png <<'PY'
import struct, sys, zlib
w, h = 50, 37
rows = b"".join(b"\0" + bytes((x * 5 + y * 3 + c * 80) % 256 for x in range(w) for c in range(3)) for y in range(h))
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
PY
NOFILES="odd_out.png*" bad "size not a multiple" "multiple of the VQGAN's factor 4" "$VQGPT" reconstruct --vqgan "$MODEL" --image odd.png --out odd_out.png
ok "--crop" "$VQGPT" reconstruct --vqgan "$MODEL" --image odd.png --crop --out crop.png
ok "--resize" "$VQGPT" reconstruct --vqgan "$MODEL" --image odd.png --resize 32 --out resize.png
check "--crop gave $(png_size crop.png), not 48x36" [ "$(png_size crop.png)" = 48x36 ]
check "--resize gave $(png_size resize.png), not 40x32" [ "$(png_size resize.png)" = 40x32 ]
# A 3-D code array decodes to a grid.
$PY - c3.npy <<'PY'
import struct, sys
hdr = "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 2, 2), }"
hdr += " " * (-(10 + len(hdr) + 1) % 64) + "\n"
open(sys.argv[1], "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + struct.pack("<12i", *range(12)))
PY
ok "decode [n,h,w]" "$VQGPT" decode --vqgan "$MODEL" --codes c3.npy --out grid.png

# --- bad model files -----------------------------------------------------------------------
mkdir bad
$PY "$HERE/make_bad_models.py" "$MODEL" bad >cases
while read -r name needle; do
  f=$TMP/bad/$name.safetensors
  NOFILES="out_$name.npy*" bad "model $name" "$f" "$VQGPT" encode --vqgan "$f" --image "$FX/vqgan_tiny_input0.png" --out "out_$name.npy"
  [ -z "$needle" ] || check "model $name: error lacks '$needle': $(cat err.txt)" grep -qF -- "$needle" err.txt
done <cases
NOFILES="o.npy*"
bad "missing model" "$TMP/nope.safetensors" "$VQGPT" encode --vqgan "$TMP/nope.safetensors" --image "$FX/vqgan_tiny_input0.png" --out o.npy

# --- bad images, codes and outputs ----------------------------------------------------------
printf 'not an image' >junk.png
bad "unreadable image" "$TMP/junk.png" "$VQGPT" encode --vqgan "$MODEL" --image "$TMP/junk.png" --out o.npy
bad "missing image" "$TMP/none.png" "$VQGPT" encode --vqgan "$MODEL" --image "$TMP/none.png" --out o.npy
$PY - . <<'PY'
import struct, sys
def npy(path, shape, values, descr="<i4"):
    hdr = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    hdr += " " * (-(10 + len(hdr) + 1) % 64) + "\n"
    fmt = "<%d%s" % (len(values), "i" if descr == "<i4" else "q")
    open(path, "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + struct.pack(fmt, *values))
d = sys.argv[1]
npy(d + "/range.npy", "(2, 2)", [0, 1, 64, 3])
npy(d + "/neg.npy", "(2, 2)", [0, -1, 2, 3])
npy(d + "/big64.npy", "(2, 2)", [0, 1, 2**40, 3], "<i8")
npy(d + "/flat.npy", "(4,)", [0, 1, 2, 3])
npy(d + "/empty.npy", "(0, 4)", [])
open(d + "/trunc.npy", "wb").write(open(d + "/range.npy", "rb").read()[:-5])
PY
NOFILES="o.png*"
bad "code out of range" "outside the codebook" "$VQGPT" decode --vqgan "$MODEL" --codes range.npy --out o.png
bad "negative code" "$TMP/neg.npy" "$VQGPT" decode --vqgan "$MODEL" --codes "$TMP/neg.npy" --out o.png
bad "int64 code overflow" "$TMP/big64.npy" "$VQGPT" decode --vqgan "$MODEL" --codes "$TMP/big64.npy" --out o.png
bad "1-D codes" "$TMP/flat.npy" "$VQGPT" decode --vqgan "$MODEL" --codes "$TMP/flat.npy" --out o.png
bad "empty codes" "$TMP/empty.npy" "$VQGPT" decode --vqgan "$MODEL" --codes "$TMP/empty.npy" --out o.png
bad "truncated codes" "$TMP/trunc.npy" "$VQGPT" decode --vqgan "$MODEL" --codes "$TMP/trunc.npy" --out o.png
NOFILES="$TMP/no/such/dir/out.png*" bad "unwritable output" "$TMP/no/such/dir/out.png" "$VQGPT" decode --vqgan "$MODEL" --codes c1.npy --out "$TMP/no/such/dir/out.png"
NOFILES="$TMP/no/dir/c.npy*" bad "unwritable codes" "$TMP/no/dir/c.npy" "$VQGPT" encode --vqgan "$MODEL" --image "$FX/vqgan_tiny_input0.png" --out "$TMP/no/dir/c.npy"
NOFILES="" bad "unknown option" "--bogus" "$VQGPT" encode --bogus 1
NOFILES="" bad "missing option" "--vqgan" "$VQGPT" decode --codes c1.npy --out o.png
bad "bad resize" "--resize" "$VQGPT" reconstruct --vqgan "$MODEL" --image odd.png --resize 30 --out o.png

finish cli_vqgan
