#!/usr/bin/env bash
# The README's first command samples from the models shipped in models/ (found without any model
# flag): it must run as written, give a grid of 8 images of 64x32 (two Fashion-MNIST items side
# by side), and the same seed must give the same picture.
# Usage: cli_readme.sh <vqgpt binary> <fixtures dir (unused)>
set -uo pipefail
VQGPT=$(realpath "$1")
ROOT=$(realpath "$(dirname "$(realpath "$0")")/..")
source "$ROOT/tests/lib.sh"

cmd=$(grep -m1 -o '\./build/vqgpt sample [^`]*' "$ROOT/README.md" | head -1)
check "no sample command in README.md" [ -n "$cmd" ] || finish cli_readme
# As written, with ./build/vqgpt being the binary under test.
run="\"\$VQGPT\"${cmd#./build/vqgpt}"
out=$(grep -o -- '--out [^ ]*' <<<"$cmd" | awk '{print $2}')
export VQGPT
ok "README sample command" bash -c "$run"
# 8 images of 64x32 in a 3x3 grid with 2-pixel borders
want="$((3 * 64 + 4 * 2))x$((3 * 32 + 4 * 2))"
check "README sample is '$(png_size "$out")', not a ${want} PNG" [ "$(png_size "$out")" = "$want" ]
mv "$out" first.png
ok "README sample command again" bash -c "$run"
check "the same seed gave different samples" cmp -s "$out" first.png

finish cli_readme
