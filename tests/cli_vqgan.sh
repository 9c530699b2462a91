#!/usr/bin/env bash
# End-to-end stage-1 commands: encode/decode/reconstruct on the fixtures, and every kind of
# bad input answered by one error line naming the file, a non-zero exit, and no output file.
set -u
VQGPT=$1
FX=$2
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
MODEL=$FX/vqgan_tiny.safetensors
passed=0
failed=0

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

# expect_error NAME NEEDLE OUTFILE CMD...: non-zero exit, exactly one stderr line containing
# NEEDLE, no OUTFILE (nor a temporary beside it) left behind.
expect_error() {
  local name=$1 needle=$2 out=$3
  shift 3
  "$@" >"$T/stdout" 2>"$T/stderr"
  local rc=$?
  local lines
  lines=$(wc -l <"$T/stderr")
  if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then
    bad "$name: exit status $rc"
  elif [ "$lines" -ne 1 ]; then
    bad "$name: expected one error line, got $lines: $(cat "$T/stderr")"
  elif ! grep -qF -- "$needle" "$T/stderr"; then
    bad "$name: error lacks '$needle': $(cat "$T/stderr")"
  elif [ -n "$out" ] && ls "$out"* >/dev/null 2>&1; then
    bad "$name: output file left behind"
  else
    ok
  fi
}

# --- happy paths ---------------------------------------------------------------------------
if "$VQGPT" encode --vqgan "$MODEL" --image "$FX/vqgan_tiny_input1.png" --out "$T/c1.npy" 2>/dev/null; then ok; else bad "encode"; fi
python3 - "$T/c1.npy" "$FX/vqgan_tiny_io.safetensors" <<'PY' && ok || bad "encoded codes differ from the reference"
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
if "$VQGPT" decode --vqgan "$MODEL" --codes "$T/c1.npy" --out "$T/d1.png" 2>/dev/null; then ok; else bad "decode"; fi
python3 - "$T/d1.png" <<'PY' && ok || bad "decoded PNG has the wrong size"
import struct, sys
raw = open(sys.argv[1], "rb").read()
assert raw[:8] == b"\x89PNG\r\n\x1a\n"
w, h = struct.unpack(">II", raw[16:24])
assert (w, h) == (48, 32), (w, h)
PY
if "$VQGPT" reconstruct --vqgan "$MODEL" --image "$FX/vqgan_tiny_input0.png" --out "$T/r0.png" 2>"$T/log" && grep -q PSNR "$T/log"; then ok; else bad "reconstruct"; fi
# A 50x37 image: rejected as it is, accepted with --crop (48x36) and --resize 32 (43x32 -> 40x32).
python3 - "$T/odd.png" <<'PY'
import struct, sys, zlib
w, h = 50, 37
rows = b"".join(b"\0" + bytes((x * 5 + y * 3 + c * 80) % 256 for x in range(w) for c in range(3)) for y in range(h))
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
PY
expect_error "size not a multiple" "multiple of the VQGAN's factor 4" "$T/odd_out.png" "$VQGPT" reconstruct --vqgan "$MODEL" --image "$T/odd.png" --out "$T/odd_out.png"
if "$VQGPT" reconstruct --vqgan "$MODEL" --image "$T/odd.png" --crop --out "$T/crop.png" 2>/dev/null; then ok; else bad "--crop"; fi
if "$VQGPT" reconstruct --vqgan "$MODEL" --image "$T/odd.png" --resize 32 --out "$T/resize.png" 2>/dev/null; then ok; else bad "--resize"; fi
python3 - "$T/crop.png" "$T/resize.png" <<'PY' && ok || bad "--crop/--resize sizes"
import struct, sys
for path, want in zip(sys.argv[1:], [(48, 36), (40, 32)]):
    raw = open(path, "rb").read()
    assert struct.unpack(">II", raw[16:24]) == want, (path, struct.unpack(">II", raw[16:24]))
PY
# A 3-D code array decodes to a grid.
python3 - "$T/c3.npy" <<'PY'
import struct, sys
hdr = "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 2, 2), }"
hdr += " " * (-(10 + len(hdr) + 1) % 64) + "\n"
open(sys.argv[1], "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + struct.pack("<12i", *range(12)))
PY
if "$VQGPT" decode --vqgan "$MODEL" --codes "$T/c3.npy" --out "$T/grid.png" 2>/dev/null; then ok; else bad "decode [n,h,w]"; fi

# --- bad model files -----------------------------------------------------------------------
mkdir "$T/bad"
python3 "$HERE/make_bad_models.py" "$MODEL" "$T/bad" >"$T/cases"
while read -r name needle; do
  f="$T/bad/$name.safetensors"
  expect_error "model $name" "$f" "$T/out_$name.npy" "$VQGPT" encode --vqgan "$f" --image "$FX/vqgan_tiny_input0.png" --out "$T/out_$name.npy"
  [ -n "$needle" ] && { grep -qF -- "$needle" "$T/stderr" && ok || bad "model $name: error lacks '$needle': $(cat "$T/stderr")"; }
done <"$T/cases"
expect_error "missing model" "$T/nope.safetensors" "$T/o.npy" "$VQGPT" encode --vqgan "$T/nope.safetensors" --image "$FX/vqgan_tiny_input0.png" --out "$T/o.npy"

# --- bad images, codes and outputs ----------------------------------------------------------
printf 'not an image' >"$T/junk.png"
expect_error "unreadable image" "$T/junk.png" "$T/o.npy" "$VQGPT" encode --vqgan "$MODEL" --image "$T/junk.png" --out "$T/o.npy"
expect_error "missing image" "$T/none.png" "$T/o.npy" "$VQGPT" encode --vqgan "$MODEL" --image "$T/none.png" --out "$T/o.npy"
python3 - "$T" <<'PY'
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
expect_error "code out of range" "outside the codebook" "$T/o.png" "$VQGPT" decode --vqgan "$MODEL" --codes "$T/range.npy" --out "$T/o.png"
expect_error "negative code" "$T/neg.npy" "$T/o.png" "$VQGPT" decode --vqgan "$MODEL" --codes "$T/neg.npy" --out "$T/o.png"
expect_error "int64 code overflow" "$T/big64.npy" "$T/o.png" "$VQGPT" decode --vqgan "$MODEL" --codes "$T/big64.npy" --out "$T/o.png"
expect_error "1-D codes" "$T/flat.npy" "$T/o.png" "$VQGPT" decode --vqgan "$MODEL" --codes "$T/flat.npy" --out "$T/o.png"
expect_error "empty codes" "$T/empty.npy" "$T/o.png" "$VQGPT" decode --vqgan "$MODEL" --codes "$T/empty.npy" --out "$T/o.png"
expect_error "truncated codes" "$T/trunc.npy" "$T/o.png" "$VQGPT" decode --vqgan "$MODEL" --codes "$T/trunc.npy" --out "$T/o.png"
expect_error "unwritable output" "$T/no/such/dir/out.png" "$T/no/such/dir/out.png" "$VQGPT" decode --vqgan "$MODEL" --codes "$T/c1.npy" --out "$T/no/such/dir/out.png"
expect_error "unwritable codes" "$T/no/dir/c.npy" "$T/no/dir/c.npy" "$VQGPT" encode --vqgan "$MODEL" --image "$FX/vqgan_tiny_input0.png" --out "$T/no/dir/c.npy"
expect_error "unknown option" "--bogus" "" "$VQGPT" encode --bogus 1
expect_error "missing option" "--vqgan" "" "$VQGPT" decode --codes "$T/c1.npy" --out "$T/o.png"
expect_error "bad resize" "--resize" "$T/o.png" "$VQGPT" reconstruct --vqgan "$MODEL" --image "$T/odd.png" --resize 30 --out "$T/o.png"

echo "cli_vqgan: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
