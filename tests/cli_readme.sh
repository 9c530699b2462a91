#!/usr/bin/env bash
# The README's first command samples from the models shipped in models/: they must load,
# sample reproducibly, and give a grid of 8 images of 64x64.
set -u
VQGPT=$1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cmd=$(grep -o '\./build/vqgpt sample [^`]*' "$ROOT/README.md" | head -1)
[ -n "$cmd" ] || { echo "FAIL: no sample command in README.md"; exit 1; }
args=${cmd#./build/vqgpt sample }
args=${args//models\//$ROOT/models/}
# shellcheck disable=SC2086
(cd "$T" && "$VQGPT" sample $args 2>"$T/log") || { echo "FAIL: README sample command: $(tail -1 "$T/log")"; exit 1; }
out=$(grep -o -- '--out [^ ]*' <<<"$args" | awk '{print $2}')
python3 - "$T/$out" <<'PY' || exit 1
import struct, sys
raw = open(sys.argv[1], "rb").read()
assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h = struct.unpack(">II", raw[16:24])
# 8 images of 64x64 in a 3x3 grid with 2-pixel borders
assert (w, h) == (3 * 64 + 4 * 2, 3 * 64 + 4 * 2), (w, h)
PY
(cd "$T" && "$VQGPT" sample $args 2>/dev/null && mv "$out" again.png && "$VQGPT" sample $args 2>/dev/null && cmp -s "$out" again.png) || { echo "FAIL: the same seed gave different samples"; exit 1; }
echo "cli_readme: 2 passed, 0 failed"
