#!/usr/bin/env bash
# vqgpt export: plain F32 export reproduces the model exactly; F16 halves its size and still
# runs; GPT models export too; bad input fails cleanly.
# Usage: cli_export.sh <vqgpt binary> <fixtures dir>
set -uo pipefail
VQGPT=$(realpath "$1")
FX=$(realpath "$2")
source "$(dirname "$(realpath "$0")")/lib.sh"
size() { stat -c %s "$1"; }

ok "export f32" "$VQGPT" export --in "$FX/vqgan_tiny.safetensors" --out v32.safetensors
ok "export f16" "$VQGPT" export --in "$FX/vqgan_tiny.safetensors" --out v16.safetensors --dtype f16
ok "reconstruct with the model" "$VQGPT" reconstruct --vqgan "$FX/vqgan_tiny.safetensors" --image "$FX/vqgan_tiny_input0.png" --out a.png
ok "reconstruct with its f32 export" "$VQGPT" reconstruct --vqgan v32.safetensors --image "$FX/vqgan_tiny_input0.png" --out b.png
check "f32 export does not reproduce the model" cmp -s a.png b.png
check "f16 export is not about half the size" [ "$(size v16.safetensors)" -lt $(($(size v32.safetensors) * 6 / 10)) ]
ok "f16 model runs" "$VQGPT" reconstruct --vqgan v16.safetensors --image "$FX/vqgan_tiny_input0.png" --out c.png
ok "export gpt bf16" "$VQGPT" export --in "$FX/gpt_tiny.safetensors" --out g16.safetensors --dtype bf16
ok "bf16 gpt samples" "$VQGPT" sample --gpt g16.safetensors --greedy --grid 4x8 --codes-out codes.npy

# Full paths, so that the errors must name the file as given.
NOFILES="x.safetensors*"
bad "bad dtype" "--dtype" "$VQGPT" export --in "$FX/vqgan_tiny.safetensors" --out x.safetensors --dtype f8
bad "other format" "taming-patchgan" "$VQGPT" export --in "$FX/disc_tiny.safetensors" --out x.safetensors
bad "missing file" "$TMP/none.safetensors" "$VQGPT" export --in "$TMP/none.safetensors" --out x.safetensors
bad "unwritable" "$TMP/no/dir/x.safetensors" "$VQGPT" export --in "$FX/gpt_tiny.safetensors" --out "$TMP/no/dir/x.safetensors"
check "a failed export left a file" [ ! -e x.safetensors ]

finish cli_export
