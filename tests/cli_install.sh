#!/usr/bin/env bash
# cmake --install into a temporary prefix (from the build the vqgpt binary belongs to), then
# the README's library example is built against the installed copy with pkg-config only, and
# with the installed CMake package; the installed program finds the installed models.
# Usage: cli_install.sh <vqgpt binary> <fixtures dir>
set -uo pipefail
VQGPT=$(realpath "$1")
FX=$(realpath "$2")
ROOT=$(realpath "$(dirname "$(realpath "$0")")/..")
BUILD=$(dirname "$VQGPT")
source "$ROOT/tests/lib.sh"
P=$TMP/prefix
unset VQGPT_MODELS

check "$BUILD is not a CMake build directory" [ -f "$BUILD/cmake_install.cmake" ] || finish cli_install
# Sanitizer builds' libraries need the sanitizer runtimes, which pkg-config does not name.
if grep -q '^VQGPT_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
  echo "skipped: $BUILD is a sanitizer build"
  exit 0
fi
ok "cmake --install" cmake --install "$BUILD" --prefix "$P" || finish cli_install

missing=""
for f in bin/vqgpt lib/libvqgpt_core.a lib/libvqgpt_sampling.a lib/libvqgpt_tokenizer.a \
  include/vqgpt/core/error.h include/vqgpt/stage1_vqgan/vqgan.h include/vqgpt/sampling/sampler.h \
  share/vqgpt/models/vqgan_photos64.safetensors lib/pkgconfig/vqgpt.pc \
  lib/cmake/vqgpt/vqgptConfig.cmake lib/cmake/vqgpt/vqgptTargets.cmake; do
  [ -f "$P/$f" ] || missing="$missing $f"
done
check "not installed:$missing" [ -z "$missing" ]
# Headers come only from the installed copy: every one compiles on its own there.
broken=""
for h in $(cd "$P/include/vqgpt" && ls */*.h); do
  case $h in core/simd.h) continue ;; esac  # AVX2 helpers: need -mavx2 -mfma
  echo "#include \"$h\"" >hdr.c
  if ! cc -std=c11 -Wall -Wextra -Werror -fsyntax-only -I"$P/include/vqgpt" hdr.c 2>err.txt; then
    broken="$h: $(head -1 err.txt)"
    break
  fi
done
check "installed header does not compile alone: $broken" [ -z "$broken" ]

# The README's example and its pkg-config build command.
awk '/^## Use as a library/{s=1} s&&/^```c$/{c=1;next} c&&/^```$/{exit} c' "$ROOT/README.md" >example.c
cc_cmd=$(awk '/^## Use as a library/{s=1} s&&/^cc .*pkg-config/{print; exit}' "$ROOT/README.md")
model=$P/share/vqgpt/models/vqgan_photos64.safetensors
have_example=1
check "README.md: no C example under 'Use as a library'" [ -s example.c ] || have_example=0
check "README.md: no cc command under 'Use as a library'" [ -n "$cc_cmd" ] || have_example=0
if [ $have_example -eq 1 ]; then
  export PKG_CONFIG_PATH=$P/lib/pkgconfig
  ok "README's build command" bash -c "$cc_cmd" && ok "README's example" ./example "$model"
  ok "example warning-free against the installed headers" \
    cc -std=c11 -Wall -Wextra -Werror example.c $(pkg-config --cflags --libs --static vqgpt) -o example2
  # It must fail when the model is bad, with the library's message (one line, naming the file).
  bad_model=$TMP/bad.safetensors
  echo garbage >"$bad_model"
  ERR_PREFIX="$bad_model" NOFILES="" bad "README's example on a bad model" "bad.safetensors" ./example "$bad_model"
  unset PKG_CONFIG_PATH
fi

# The CMake package, from a C-only project (the tokenizer's C++ runtime must come along).
mkdir -p cm
cp example.c cm/example.c
cat >cm/tok.c <<'C'
#include "tokenizer/tokenizer.h"
int main(void) { return vqgpt_tokenizer_load_file("/nonexistent.model") == NULL ? 0 : 1; }
C
{
  echo 'cmake_minimum_required(VERSION 3.18)'
  echo 'project(use_vqgpt C)'
  awk '/^## Use as a library/{s=1} s&&/^```cmake$/{c=1;next} c&&/^```$/{exit} c' "$ROOT/README.md"
  echo 'add_executable(tok tok.c)'
  echo 'target_link_libraries(tok PRIVATE vqgpt::vqgpt)'
} >cm/CMakeLists.txt
if ok "CMake package: configure" cmake -S cm -B cm/b -DCMAKE_PREFIX_PATH="$P" -DCMAKE_BUILD_TYPE=Release &&
  ok "CMake package: build" cmake --build cm/b; then
  ok "CMake package: the example runs" cm/b/example "$model"
  ok "CMake package: a tokenizer call links from C" cm/b/tok
fi

# The installed program finds the installed models (share/vqgpt/models beside bin/): whatever
# the build's program samples with no model flags, the installed one must too.
cd "$TMP/cm" || exit 1
if "$VQGPT" sample --num 1 --seed 1 --out build.png >/dev/null 2>&1; then
  ok "installed vqgpt samples with the installed models" "$P/bin/vqgpt" sample --num 1 --seed 1 --out installed.png &&
    check "installed and built programs sample differently" cmp -s build.png installed.png
else
  echo "note: $VQGPT samples nothing with no model flags; installed default models not checked"
fi
ok "installed vqgpt runs an installed model" "$P/bin/vqgpt" encode --vqgan "$model" \
  --image "$FX/vqgan_tiny_input0.png" --out codes.npy
finish cli_install
