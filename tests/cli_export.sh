#!/usr/bin/env bash
# vqgpt export: plain F32 export reproduces the model exactly; F16 halves its size and still
# runs; GPT models export too; bad input fails cleanly.
set -u
VQGPT=$1
FX=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
size() { stat -c %s "$1"; }

"$VQGPT" export --in "$FX/vqgan_tiny.safetensors" --out "$T/v32.safetensors" 2>/dev/null && ok || bad "export f32"
"$VQGPT" export --in "$FX/vqgan_tiny.safetensors" --out "$T/v16.safetensors" --dtype f16 2>/dev/null && ok || bad "export f16"
"$VQGPT" reconstruct --vqgan "$FX/vqgan_tiny.safetensors" --image "$FX/vqgan_tiny_input0.png" --out "$T/a.png" 2>/dev/null
"$VQGPT" reconstruct --vqgan "$T/v32.safetensors" --image "$FX/vqgan_tiny_input0.png" --out "$T/b.png" 2>/dev/null
cmp -s "$T/a.png" "$T/b.png" && ok || bad "f32 export does not reproduce the model"
[ "$(size "$T/v16.safetensors")" -lt $(( $(size "$T/v32.safetensors") * 6 / 10 )) ] && ok || bad "f16 export is not about half the size"
"$VQGPT" reconstruct --vqgan "$T/v16.safetensors" --image "$FX/vqgan_tiny_input0.png" --out "$T/c.png" 2>/dev/null && ok || bad "f16 model does not run"
"$VQGPT" export --in "$FX/gpt_tiny.safetensors" --out "$T/g16.safetensors" --dtype bf16 2>/dev/null && ok || bad "export gpt bf16"
"$VQGPT" sample --gpt "$T/g16.safetensors" --greedy --grid 4x8 --codes-out "$T/codes.npy" 2>/dev/null && ok || bad "bf16 gpt does not sample"

expect_error() {
  local name=$1 needle=$2
  shift 2
  "$@" >/dev/null 2>"$T/err"
  local rc=$?
  if [ $rc -eq 0 ] || [ $rc -ge 128 ] || [ "$(wc -l <"$T/err")" -ne 1 ] || ! grep -qF -- "$needle" "$T/err"; then
    bad "$name (exit $rc): $(cat "$T/err")"
  else
    ok
  fi
}
expect_error "bad dtype" "--dtype" "$VQGPT" export --in "$FX/vqgan_tiny.safetensors" --out "$T/x.safetensors" --dtype f8
expect_error "other format" "taming-patchgan" "$VQGPT" export --in "$FX/disc_tiny.safetensors" --out "$T/x.safetensors"
expect_error "missing file" "$T/none.safetensors" "$VQGPT" export --in "$T/none.safetensors" --out "$T/x.safetensors"
expect_error "unwritable" "$T/no/dir/x.safetensors" "$VQGPT" export --in "$FX/gpt_tiny.safetensors" --out "$T/no/dir/x.safetensors"
[ ! -e "$T/x.safetensors" ] && ok || bad "a failed export left a file"

echo "cli_export: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
