#!/usr/bin/env bash
# train-vqgan end to end on a handful of real photos: the reconstruction L1 must fall by at
# least half, a resumed run must be bit-identical to an uninterrupted one, and bad input
# must fail cleanly.
# Usage: cli_train_vqgan.sh <vqgpt binary> <fixtures dir>
set -uo pipefail
VQGPT=$(realpath "$1")
FX=$(realpath "$2")
PHOTOS=$FX/photos
source "$(dirname "$(realpath "$0")")/lib.sh"

# --- learning: L1 of the first 20 steps against the last 60 ---------------------------------
# One 20-step interval's L1 varies by ~10% around the trend, so the end is the mean of three;
# at 600 steps it is ~0.35 of the start (400 steps left it too close to one half).
ok "training run" "$VQGPT" train-vqgan --data "$PHOTOS" --size 32 --config tiny --steps 600 --batch 4 --lr 2e-3 \
  --disc-start 100000 --log-every 20 --sample-every 600 --save-every 600 --val 1 --seed 3 \
  --out v.safetensors
first=$(grep -m1 -o ' l1 [0-9.]*' err.txt | awk '{print $2}')
last=$(grep -o ' l1 [0-9.]*' err.txt | tail -3 | awk '{s += $2} END {if (NR == 3) printf "%.4f", s / 3}')
echo "L1 first 20 steps: $first, last 60 steps: $last"
check "L1 fell only from $first to $last" awk -v f="$first" -v l="$last" 'BEGIN { exit !(f > 0 && l <= 0.5 * f) }'
check "no validation PSNR" grep -q "validation PSNR" err.txt
check "no validation reconstruction" [ -s v.safetensors.recon.png ]
# The checkpoint is a plain model too.
ok "the checkpoint loads as a model" "$VQGPT" reconstruct --vqgan v.safetensors --image "$PHOTOS/photo0.png" --crop --out r.png

# --- exact resume, with the GAN and code re-initialisation active -------------------------
common=(--data "$PHOTOS" --size 32 --config tiny --batch 2 --lr 1e-3 --disc-start 2 --reinit-every 2
        --log-every 1 --sample-every 100 --save-every 2 --val 1 --seed 11)
ok "uninterrupted run" "$VQGPT" train-vqgan "${common[@]}" --steps 6 --out a.safetensors
ok "first half" "$VQGPT" train-vqgan "${common[@]}" --steps 2 --out b.safetensors
ok "resumed run" "$VQGPT" train-vqgan "${common[@]}" --steps 6 --out b.safetensors --resume
check "resume did not start at step 2" grep -q "resumed .* at step 2" err.txt
check "resumed checkpoint differs from the uninterrupted one" cmp -s a.safetensors b.safetensors

# --- bad input ------------------------------------------------------------------------------
# Progress lines may precede it; the error is the last line and starts with "vqgpt train-vqgan: ".
ERR_PREFIX="vqgpt train-vqgan: "
NOFILES="x.safetensors*"
mkdir empty
bad_last "missing folder" "$TMP/nope" "$VQGPT" train-vqgan --data "$TMP/nope" --out x.safetensors
bad_last "empty folder" "no PNG or JPEG" "$VQGPT" train-vqgan --data empty --out x.safetensors
printf 'garbage' >empty/broken.png
bad_last "broken image" "broken.png" "$VQGPT" train-vqgan --data empty --out x.safetensors --val 0
bad_last "resume without checkpoint" "does not exist" "$VQGPT" train-vqgan --data "$PHOTOS" --out none.safetensors --resume
bad_last "size not a multiple" "multiple" "$VQGPT" train-vqgan --data "$PHOTOS" --config tiny --size 30 --out x.safetensors
bad_last "resume other config" "differs" "$VQGPT" train-vqgan --data "$PHOTOS" --config small --size 32 --steps 8 --val 1 --out a.safetensors --resume
bad_last "unwritable output" "$TMP/no/dir/v.safetensors" "$VQGPT" train-vqgan --data "$PHOTOS" --out "$TMP/no/dir/v.safetensors"
check "a failed run left a file" [ ! -e x.safetensors ]

finish cli_train_vqgan
