#!/usr/bin/env bash
# train-vqgan end to end on a handful of real photos: the reconstruction L1 must fall by at
# least half, a resumed run must be bit-identical to an uninterrupted one, and bad input
# must fail cleanly.
set -u
VQGPT=$1
FX=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
PHOTOS=$FX/photos
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

# --- learning: L1 of the first 20 steps against the last 60 ---------------------------------
# One 20-step interval's L1 varies by ~10% around the trend, so the end is the mean of three;
# at 600 steps it is ~0.35 of the start (400 steps left it too close to one half).
"$VQGPT" train-vqgan --data "$PHOTOS" --size 32 --config tiny --steps 600 --batch 4 --lr 2e-3 \
  --disc-start 100000 --log-every 20 --sample-every 600 --save-every 600 --val 1 --seed 3 \
  --out "$T/v.safetensors" 2>"$T/log" && ok || { bad "training run"; cat "$T/log" >&2; }
first=$(grep -m1 -o ' l1 [0-9.]*' "$T/log" | awk '{print $2}')
last=$(grep -o ' l1 [0-9.]*' "$T/log" | tail -3 | awk '{s += $2} END {if (NR == 3) printf "%.4f", s / 3}')
echo "L1 first 20 steps: $first, last 60 steps: $last"
awk -v f="$first" -v l="$last" 'BEGIN { exit !(f > 0 && l <= 0.5 * f) }' && ok || bad "L1 fell only from $first to $last"
grep -q "validation PSNR" "$T/log" && [ -s "$T/v.safetensors.recon.png" ] && ok || bad "no validation output"
# The checkpoint is a plain model too.
"$VQGPT" reconstruct --vqgan "$T/v.safetensors" --image "$PHOTOS/photo0.png" --crop --out "$T/r.png" 2>/dev/null && ok || bad "checkpoint does not load as a model"

# --- exact resume, with the GAN and code re-initialisation active -------------------------
common=(--data "$PHOTOS" --size 32 --config tiny --batch 2 --lr 1e-3 --disc-start 2 --reinit-every 2
        --log-every 1 --sample-every 100 --save-every 2 --val 1 --seed 11)
"$VQGPT" train-vqgan "${common[@]}" --steps 6 --out "$T/a.safetensors" 2>/dev/null && ok || bad "uninterrupted run"
"$VQGPT" train-vqgan "${common[@]}" --steps 2 --out "$T/b.safetensors" 2>/dev/null && ok || bad "first half"
"$VQGPT" train-vqgan "${common[@]}" --steps 6 --out "$T/b.safetensors" --resume 2>"$T/rlog" && ok || bad "resumed run"
grep -q "resumed .* at step 2" "$T/rlog" && ok || bad "resume did not start at step 2"
cmp -s "$T/a.safetensors" "$T/b.safetensors" && ok || bad "resumed checkpoint differs from the uninterrupted one"

# --- bad input ------------------------------------------------------------------------------
# Progress lines may precede it; the error is the last line and starts with "vqgpt".
expect_error() {
  local name=$1 needle=$2
  shift 2
  "$@" >/dev/null 2>"$T/err"
  local rc=$?
  local last
  last=$(tail -1 "$T/err")
  if [ $rc -eq 0 ] || [ $rc -ge 128 ] || [[ "$last" != "vqgpt train-vqgan: "* ]] || [[ "$last" != *"$needle"* ]]; then
    bad "$name (exit $rc): $(cat "$T/err")"
  else
    ok
  fi
}
mkdir "$T/empty"
expect_error "missing folder" "$T/nope" "$VQGPT" train-vqgan --data "$T/nope" --out "$T/x.safetensors"
expect_error "empty folder" "no PNG or JPEG" "$VQGPT" train-vqgan --data "$T/empty" --out "$T/x.safetensors"
printf 'garbage' >"$T/empty/broken.png"
expect_error "broken image" "broken.png" "$VQGPT" train-vqgan --data "$T/empty" --out "$T/x.safetensors" --val 0
expect_error "resume without checkpoint" "does not exist" "$VQGPT" train-vqgan --data "$PHOTOS" --out "$T/none.safetensors" --resume
expect_error "size not a multiple" "multiple" "$VQGPT" train-vqgan --data "$PHOTOS" --config tiny --size 30 --out "$T/x.safetensors"
expect_error "resume other config" "differs" "$VQGPT" train-vqgan --data "$PHOTOS" --config small --size 32 --steps 8 --val 1 --out "$T/a.safetensors" --resume
expect_error "unwritable output" "$T/no/dir/v.safetensors" "$VQGPT" train-vqgan --data "$PHOTOS" --out "$T/no/dir/v.safetensors"
[ ! -e "$T/x.safetensors" ] && ok || bad "a failed run left a file"

echo "cli_train_vqgan: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
