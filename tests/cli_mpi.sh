#!/usr/bin/env bash
# Data-parallel training under mpirun on loopback (2 ranks, one OpenMP thread each): 2 ranks
# with a batch of B give the model of one process with B (both trainers, the GAN and code
# re-initialisation active), only rank 0 logs and saves, a 2-rank run resumes bit-for-bit, a
# checkpoint resumes with another rank count, and misuse fails with one clear line.
# Usage: cli_mpi.sh <vqgpt binary> <fixtures dir>
set -uo pipefail
VQGPT=$(realpath "$1")
FX=$(realpath "$2")
HERE=$(dirname "$(realpath "$0")")
source "$HERE/lib.sh"

if ! "$VQGPT" version | grep -q "MPI: yes"; then
  echo "cli_mpi: SKIPPED: this build has no MPI (install libopenmpi-dev openmpi-bin and rebuild)"
  exit 0
fi
command -v mpirun >/dev/null || { echo "FAIL: the build has MPI but mpirun is not installed" >&2; exit 1; }
$PY -c "import numpy" 2>/dev/null || { echo "FAIL: python3-numpy is needed to compare models" >&2; exit 1; }

# CI runs as root; one thread per rank; shared memory only; waiting ranks yield the core.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
MPIRUN=(mpirun --oversubscribe --bind-to none -np 2 --mca btl self,vader
        --mca btl_vader_single_copy_mechanism none --mca mpi_yield_when_idle 1)
COMPARE=$HERE/compare_safetensors.py

# same_model <what> <a> <b> <prefix> <tol>: relative L2 difference of the tensors named so.
same_model() {
  checks=$((checks + 1))
  local r
  r=$($PY "$COMPARE" "$2" "$3" --prefix "$4" --tol "$5" 2>&1) || fail "$1: $r (tolerance $5)"
  echo "$1: $r"
}

# same_numbers <what> <a> <b>: the same lines, numbers equal to 1e-3 relative (printed
# rounding), in files of progress lines without speeds and ETAs.
same_numbers() {
  checks=$((checks + 1))
  $PY - "$2" "$3" <<'PYEOF' || fail "$1: $(paste -d'|' "$2" "$3")"
import re, sys
a, b = (open(f).read().splitlines() for f in sys.argv[1:3])
num = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?")
ok = len(a) == len(b) > 0
for x, y in zip(a, b):
    nx, ny = num.findall(x), num.findall(y)
    ok &= num.sub("#", x) == num.sub("#", y) and len(nx) == len(ny)
    ok &= all(abs(float(p) - float(q)) <= 1e-3 * max(abs(float(p)), 1.0) for p, q in zip(nx, ny))
sys.exit(0 if ok else 1)
PYEOF
}

# --- train-vqgan: 2 ranks = 1 process --------------------------------------------------------
# Three steps with the GAN from step 2 and dead codes re-initialised at step 2. The models
# differ only by float rounding (sums in another order), which Adam's first steps amplify in
# the few weights whose gradient is nearly zero: relative L2 ~2e-4 (VQGAN) and ~1.5e-3
# (discriminator) here. Unsynchronised BatchNorm statistics give 5e-3 and 7e-2 at step 2.
V=(train-vqgan --data "$FX/photos" --size 32 --config tiny --batch 4 --lr 1e-3 --disc-start 1
   --reinit-every 2 --log-every 1 --sample-every 3 --save-every 2 --val 1 --seed 11)
ok "vqgan, 1 process" "$VQGPT" "${V[@]}" --steps 3 --out one.safetensors && cp err.txt one.log
ok "vqgan, 2 ranks" "${MPIRUN[@]}" "$VQGPT" "${V[@]}" --steps 3 --out two.safetensors && cp err.txt two.log
same_model "vqgan: VQGAN" one.safetensors two.safetensors encoder.,decoder.,quant_conv.,post_quant_conv.,quantize. 1e-3
same_model "vqgan: discriminator (with running statistics)" one.safetensors two.safetensors loss.discriminator. 1e-2
# Logged once, by rank 0, with the whole batch's losses, code usage and perplexity.
progress() { grep -o '^step [0-9]*/[0-9]* .*codes [0-9/]* ppl [0-9.]*' "$1" | head -2 >"$2"; }
progress one.log one.steps
progress two.log two.steps
same_numbers "vqgan progress, steps 1-2" one.steps two.steps
checks=$((checks + 1))
[ "$(grep -c '^step [0-9]*/3 ' two.log)" -eq 3 ] || fail "2 ranks: progress not printed once per step: $(cat two.log)"
checks=$((checks + 1))
grep -q "validation PSNR" two.log && [ -s two.safetensors.recon.png ] && ! ls ./*.tmp.* >/dev/null 2>&1 ||
  fail "2 ranks: no validation output from rank 0, or a temporary left"

# --- train-vqgan: a 2-rank run resumes bit-for-bit; another rank count continues --------------
ok "vqgan, 2 ranks, steps 1-2" "${MPIRUN[@]}" "$VQGPT" "${V[@]}" --steps 2 --out b.safetensors
ok "vqgan, 2 ranks, resume step 3" "${MPIRUN[@]}" "$VQGPT" "${V[@]}" --steps 3 --out b.safetensors --resume
checks=$((checks + 1))
grep -q "resumed .* at step 2" err.txt && cmp -s two.safetensors b.safetensors ||
  fail "2-rank resume is not bit-identical to the uninterrupted 2-rank run"
cp one.safetensors c.safetensors
ok "vqgan, 1-process checkpoint resumed by 2 ranks" "${MPIRUN[@]}" "$VQGPT" "${V[@]}" --steps 4 --out c.safetensors --resume
checks=$((checks + 1))
grep -q "resumed .* at step 3" err.txt && grep -q "^step 4/4" err.txt || fail "resume with 2 ranks: $(tail -2 err.txt)"

# --- train-gpt: 2 ranks = 1 process (input corruption drawn per row) -------------------------
mkdir -p data/cats data/dogs
cp "$FX/vqgan_tiny_input0.png" data/cats/a.png
cp "$FX/vqgan_tiny_input1.png" data/cats/b.png
cp "$FX/vqgan_tiny_input1.png" data/dogs/c.png
cp "$FX/vqgan_tiny_input0.png" data/dogs/d.png
G=(train-gpt --vqgan "$FX/vqgan_tiny.safetensors" --data data --classes --n-layer 1 --n-head 2
   --n-embd 16 --batch 4 --crops 3 --warmup 2 --lr 1e-3 --pkeep 0.7 --log-every 1
   --val-fraction 0.25 --checkpoint-every 2 --eval-every 2)
ok "gpt, 1 process" "$VQGPT" "${G[@]}" --steps 4 --out g1.safetensors && cp err.txt g1.log
ok "gpt, 2 ranks" "${MPIRUN[@]}" "$VQGPT" "${G[@]}" --steps 4 --out g2.safetensors && cp err.txt g2.log
same_model "gpt" g1.safetensors g2.safetensors "" 1e-5
grep 'validation loss' g1.log >g1.val
grep 'validation loss' g2.log >g2.val
same_numbers "gpt validation losses (shared by the ranks)" g1.val g2.val
checks=$((checks + 1))
[ "$(wc -l <g2.val)" -eq 2 ] || fail "gpt: $(wc -l <g2.val) validation lines for 2 evaluations"
ok "gpt, 2 ranks, steps 1-2" "${MPIRUN[@]}" "$VQGPT" "${G[@]}" --steps 2 --out g3.safetensors
ok "gpt, 2 ranks, resume 3-4" "${MPIRUN[@]}" "$VQGPT" "${G[@]}" --steps 4 --out g3.safetensors --resume
checks=$((checks + 1))
cmp -s g2.safetensors g3.safetensors || fail "2-rank GPT resume is not bit-identical"

# --- misuse: one line naming the problem, non-zero exit, nothing written ----------------------
# (mpirun adds its own lines about the aborted job: only ours are checked)
mpi_bad() {
  local what=$1 pattern=$2
  shift 2
  checks=$((checks + 1))
  "${MPIRUN[@]}" "$@" >out.txt 2>err.txt
  local rc=$? ours
  ours=$(grep '^vqgpt ' err.txt | sed 's/ (rank [0-9]*):/:/' | sort -u)  # each rank may say it
  if [ $rc -eq 0 ] || [ -z "$ours" ] || [ "$(echo "$ours" | wc -l)" -ne 1 ] || ! grep -q -- "$pattern" <<<"$ours"; then
    fail "$what: exit $rc: $(cat err.txt)"
  fi
  [ ! -e x.safetensors ] || fail "$what: left x.safetensors"
}
mpi_bad "batch not a multiple of the ranks" "not a multiple of the 2 ranks" "$VQGPT" "${V[@]}" --batch 3 --steps 1 --out x.safetensors
mpi_bad "gpt batch not a multiple" "multiple" "$VQGPT" "${G[@]}" --batch 3 --steps 1 --out x.safetensors
mpi_bad "gpt dropout" "dropout" "$VQGPT" "${G[@]}" --resid-pdrop 0.1 --steps 1 --out x.safetensors
mpi_bad "not a training command" "does not run data-parallel" "$VQGPT" sample --gpt "$FX/gpt_tiny.safetensors" --codes-out x.npy

finish cli_mpi
