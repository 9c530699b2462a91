#!/usr/bin/env bash
# vqgpt info: describes the shipped models, a fixture and a training checkpoint, and refuses a
# missing, truncated, garbled or NaN-holding file with one line naming it.
# Usage: cli_info.sh <vqgpt binary> <fixtures dir>
set -uo pipefail
VQGPT=$(realpath "$1")
FX=$(realpath "$2")
MODELS=$(realpath "$(dirname "$(realpath "$0")")/../models")
source "$(dirname "$(realpath "$0")")/lib.sh"

ok "text GPT" "$VQGPT" info --in "$MODELS/fmnist_text_gpt.safetensors"
check "text GPT: shape" grep -q "GPT: 3.52M parameters, 4 layers, 8 heads, 256 wide" out.txt
check "text GPT: prompts and tokenizer" grep -q "condition: text, prompts of up to 16 tokens, tokenizer of 128 pieces (inside)" out.txt
check "text GPT: grid" grep -q "trained grid 8x16" out.txt
check "text GPT: stored settings" grep -q 'sampling settings: {"cfg": [0-9]' out.txt
check "text GPT: storage" grep -q "F16 " out.txt
check "text GPT: plain model" grep -q "training state: none" out.txt
ok "class GPT" "$VQGPT" info --in "$MODELS/fmnist_class_gpt.safetensors"
check "class GPT: classes and names" grep -q 'condition: class, 10 classes and a null class (guidance), names \["t-shirt"' out.txt
ok "VQGAN" "$VQGPT" info --in "$MODELS/fmnist_vqgan.safetensors"
check "VQGAN: codebook and factor" grep -q "VQGAN: 512 codes of 32 (nearest code), downsampling f4" out.txt
check "VQGAN: fingerprint the GPTs record" grep -q "codebook fingerprint: a755b94066f73545" out.txt
ok "fixture GPT with tensors" "$VQGPT" info --in "$FX/gpt_tiny.safetensors" --tensors
check "tensor list" grep -Eq "^  tok_emb.weight +F32  \[80, 32\]" out.txt
check "unconditional" grep -q "condition: none (start token 0)" out.txt
check "nothing on stderr" [ ! -s err.txt ]

# A checkpoint names its step.
mkdir -p data && cp "$FX/vqgan_tiny_input0.png" "$FX/vqgan_tiny_input1.png" data/
ok "train a tiny GPT" "$VQGPT" train-gpt --vqgan "$FX/vqgan_tiny.safetensors" --data data --out g.safetensors \
  --steps 2 --batch 2 --n-layer 1 --n-head 2 --n-embd 16 --val-fraction 0
ok "checkpoint" "$VQGPT" info --in g.safetensors
check "checkpoint step" grep -q "training state: checkpoint at step 2 (optimizer state)" out.txt
ok "VQGAN fixture" "$VQGPT" info --in "$FX/vqgan_tiny.safetensors"
ok "a discriminator is described, not loaded" "$VQGPT" info --in "$FX/disc_tiny.safetensors"
check "discriminator format" grep -q "taming-patchgan" out.txt

# Damaged files: the error names the file.
head -c 2000 "$FX/gpt_tiny.safetensors" >trunc.safetensors
printf 'not a model at all' >garbage.safetensors
cp "$FX/gpt_tiny.safetensors" nan.safetensors
# The last 4 bytes belong to an F32 tensor (the data section is covered exactly): a NaN.
printf '\xff\xff\xff\xff' | dd of=nan.safetensors bs=1 seek=$(($(stat -c %s nan.safetensors) - 4)) conv=notrunc status=none
bad "missing" "$TMP/none.safetensors" "$VQGPT" info --in "$TMP/none.safetensors"
bad "truncated" "trunc.safetensors" "$VQGPT" info --in trunc.safetensors
bad "garbage" "garbage.safetensors" "$VQGPT" info --in garbage.safetensors
bad "a NaN weight" "nan.safetensors" "$VQGPT" info --in nan.safetensors
bad "no --in" "--in" "$VQGPT" info

finish cli_info
