#!/usr/bin/env bash
# The README's first command samples from the models shipped in models/ (found without any model
# flag): it must run as written, give a grid of 8 images of 64x32 (two Fashion-MNIST items side
# by side), and the same seed must give the same picture.
set -u
VQGPT=$(realpath "$1")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cmd=$(grep -o '\./build/vqgpt sample [^`]*' "$ROOT/README.md" | head -1)
[ -n "$cmd" ] || { echo "FAIL: no sample command in README.md"; exit 1; }
run="\"\$VQGPT\"${cmd#./build/vqgpt}"
out=$(grep -o -- '--out [^ ]*' <<<"$cmd" | awk '{print $2}')
export VQGPT
(cd "$T" && eval "$run" 2>"$T/log") || { echo "FAIL: README sample command: $(tail -1 "$T/log")"; exit 1; }
PY=python3
$PY -c "import numpy" 2>/dev/null || PY=/usr/bin/python3
$PY - "$T/$out" <<'PY' || exit 1
import struct, sys
raw = open(sys.argv[1], "rb").read()
assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h = struct.unpack(">II", raw[16:24])
# 8 images of 64x32 in a 3x3 grid with 2-pixel borders
assert (w, h) == (3 * 64 + 4 * 2, 3 * 32 + 4 * 2), (w, h)
PY
(cd "$T" && mv "$out" first.png && eval "$run" 2>/dev/null && cmp -s "$out" first.png) || { echo "FAIL: the same seed gave different samples"; exit 1; }
echo "cli_readme: 2 passed, 0 failed"
