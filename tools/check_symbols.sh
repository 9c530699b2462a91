#!/usr/bin/env bash
# Lists the symbols the static libraries export without the project prefix `vqgpt_`: names a
# program embedding the libraries could clash with (image_load, json_parse, ...).
#
# usage: tools/check_symbols.sh [--map] [BUILD_DIR]      (BUILD_DIR defaults to ./build)
#   prints "<library> <symbol>" per unprefixed symbol and a count per library;
#   --map prints a rename map instead, one "<old> vqgpt_<old>" per line.
# Exit status: 0 if every exported symbol is prefixed, 1 if not, 2 on a usage error.
# Weak and unique symbols (W, V, u: C++ template instantiations from the standard library
# in the SentencePiece shim) are merged by the linker, cannot clash, and are not listed.
set -euo pipefail
map=0
if [ "${1:-}" = "--map" ]; then
  map=1
  shift
fi
build=${1:-build}
shopt -s nullglob
libs=("$build"/libvqgpt_*.a)
if [ ${#libs[@]} -eq 0 ]; then
  echo "check_symbols: no libvqgpt_*.a in $build (build first)" >&2
  exit 2
fi
total=0
bad=0
for lib in "${libs[@]}"; do
  name=$(basename "$lib" .a)
  # Defined, external, strong: text, data, bss, read-only data, common.
  syms=$(nm -g --defined-only "$lib" | awk 'NF == 3 && $2 ~ /^[TDBRCG]$/ {print $3}' | sort -u)
  n=$(grep -c . <<<"$syms" || true)
  unprefixed=$(grep -v '^vqgpt_' <<<"$syms" | grep . || true)
  k=$(grep -c . <<<"$unprefixed" || true)
  total=$((total + n))
  bad=$((bad + k))
  if [ "$map" -eq 1 ]; then
    [ "$k" -eq 0 ] || sed 's/.*/& vqgpt_&/' <<<"$unprefixed"
  else
    [ "$k" -eq 0 ] || sed "s/^/$name /" <<<"$unprefixed"
    echo "# $name: $k of $n exported symbols without the vqgpt_ prefix" >&2
  fi
done
[ "$map" -eq 1 ] || echo "# all libraries: $bad of $total exported symbols without the vqgpt_ prefix" >&2
[ "$bad" -eq 0 ]
