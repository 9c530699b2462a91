#!/usr/bin/env bash
# Lists the C/C++ sources that differ from what clang-format makes of them with the project's
# .clang-format (DESIGN.md: the style is checked in, not argued over). Run
# `clang-format -i FILE` to fix one.
#
# usage: tools/check_format.sh [SOURCE_DIR]      (SOURCE_DIR defaults to the repository root)
# Exit status: 0 if every source is formatted, 1 if not, 2 if clang-format is missing.
set -uo pipefail
root=${1:-$(dirname "$(realpath "$0")")/..}
cd "$root" || exit 2
command -v clang-format >/dev/null || { echo "check_format: clang-format not found" >&2; exit 2; }
mapfile -t files < <(find cli core data sampling stage1_vqgan stage2_transformer tokenizer weights \
  bench tests -name '*.c' -o -name '*.h' -o -name '*.cc' 2>/dev/null | sort)
bad=0
for f in "${files[@]}"; do
  if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
    echo "$f"
    bad=$((bad + 1))
  fi
done
echo "check_format: $bad of ${#files[@]} sources differ from clang-format's output" >&2
[ $bad -eq 0 ]
