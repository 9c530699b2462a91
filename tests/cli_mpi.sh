#!/usr/bin/env bash
# Data-parallel training under mpirun on loopback (2 ranks, one OpenMP thread each): 2 ranks
# with a batch of B give the model of one process with B (both trainers, the GAN and code
# re-initialisation active, the GPT also with dropout), only rank 0 logs and saves, a 2-rank
# run resumes bit-for-bit, a checkpoint resumes with another rank count, and misuse fails with
# one clear line.
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
check "the build has MPI but mpirun is not installed" command -v mpirun >/dev/null || finish cli_mpi
check "python3-numpy is needed to compare models" $PY -c "import numpy" || finish cli_mpi

# CI runs as root; one thread per rank; shared memory only; waiting ranks yield the core.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
MPIRUN=(mpirun --oversubscribe --bind-to none -np 2 --mca btl self,vader
        --mca btl_vader_single_copy_mechanism none --mca mpi_yield_when_idle 1)
COMPARE=$HERE/compare_safetensors.py

# same_model <what> <a> <b> <prefix> <tol>: relative L2 difference of the tensors named so.
same_model() {
  local r status=0
  r=$($PY "$COMPARE" "$2" "$3" --prefix "$4" --tol "$5" 2>&1) || status=$?
  echo "$1: $r"
  check "$1: $r (tolerance $5)" [ "$status" -eq 0 ]
}

# same_numbers <what> <a> <b>: the same lines, numbers equal to 1e-3 relative (printed
# rounding), in files of progress lines without speeds and ETAs.
same_numbers() {
  check "$1: $(paste -d'|' "$2" "$3")" $PY - "$2" "$3" <<'PYEOF'
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
check "2 ranks: progress not printed once per step: $(cat two.log)" [ "$(grep -c '^step [0-9]*/3 ' two.log)" -eq 3 ]
check "2 ranks: no validation PSNR from rank 0" grep -q "validation PSNR" two.log
check "2 ranks: no validation reconstruction from rank 0" [ -s two.safetensors.recon.png ]
check "2 ranks: a temporary left" ! compgen -G "./*.tmp.*"

# --- train-vqgan: a 2-rank run resumes bit-for-bit; another rank count continues --------------
ok "vqgan, 2 ranks, steps 1-2" "${MPIRUN[@]}" "$VQGPT" "${V[@]}" --steps 2 --out b.safetensors
ok "vqgan, 2 ranks, resume step 3" "${MPIRUN[@]}" "$VQGPT" "${V[@]}" --steps 3 --out b.safetensors --resume
check "2-rank resume did not start at step 2" grep -q "resumed .* at step 2" err.txt
check "2-rank resume is not bit-identical to the uninterrupted 2-rank run" cmp -s two.safetensors b.safetensors
cp one.safetensors c.safetensors
ok "vqgan, 1-process checkpoint resumed by 2 ranks" "${MPIRUN[@]}" "$VQGPT" "${V[@]}" --steps 4 --out c.safetensors --resume
check "resume with 2 ranks did not start at step 3: $(tail -2 err.txt)" grep -q "resumed .* at step 3" err.txt
check "resume with 2 ranks did not reach step 4: $(tail -2 err.txt)" grep -q "^step 4/4" err.txt

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
check "gpt: $(wc -l <g2.val) validation lines for 2 evaluations" [ "$(wc -l <g2.val)" -eq 2 ]
ok "gpt, 2 ranks, steps 1-2" "${MPIRUN[@]}" "$VQGPT" "${G[@]}" --steps 2 --out g3.safetensors
ok "gpt, 2 ranks, resume 3-4" "${MPIRUN[@]}" "$VQGPT" "${G[@]}" --steps 4 --out g3.safetensors --resume
check "2-rank GPT resume is not bit-identical" cmp -s g2.safetensors g3.safetensors

# --- train-gpt with dropout: 2 ranks = 1 process ----------------------------------------------
# Every dropout site on: each rank's rows get the masks of those rows of the whole batch. The
# models are compared by relative L2, as above: 3e-8 here, 3e-3 with masks drawn per rank's own
# rows (measured), a margin the all-reduce's rounding comes nowhere near. The logged losses
# alone would not do: such masks move them by only 2e-4, inside the tolerance for their printed
# rounding; the progress lines (loss and gradient norm, the latter then off by 2%) must agree too.
D=("${G[@]}" --embd-pdrop 0.1 --resid-pdrop 0.1 --attn-pdrop 0.1)
ok "gpt dropout, 1 process" "$VQGPT" "${D[@]}" --steps 4 --out d1.safetensors && cp err.txt d1.log
ok "gpt dropout, 2 ranks" "${MPIRUN[@]}" "$VQGPT" "${D[@]}" --steps 4 --out d2.safetensors && cp err.txt d2.log
same_model "gpt dropout" d1.safetensors d2.safetensors "" 1e-5
gpt_progress() { grep -o '^step [0-9]*/4  loss [0-9.]*  lr [0-9.e-]*  |g| [0-9.]*' "$1" >"$2"; }
gpt_progress d1.log d1.steps
gpt_progress d2.log d2.steps
same_numbers "gpt dropout progress" d1.steps d2.steps
check "gpt dropout: $(wc -l <d2.steps) progress lines for 4 steps" [ "$(wc -l <d2.steps)" -eq 4 ]

# --- misuse: one line naming the problem, non-zero exit, nothing written ----------------------
# (mpirun adds its own lines about the aborted job, so not lib.sh's bad: only ours are checked)
mpi_bad() {
  local what=$1 pattern=$2
  shift 2
  "${MPIRUN[@]}" "$@" >out.txt 2>err.txt
  local rc=$? ours
  ours=$(grep '^vqgpt ' err.txt | sed 's/ (rank [0-9]*):/:/' | sort -u)  # each rank may say it
  check "$what: exit $rc: $(cat err.txt)" refused_once "$rc" "$ours" "$pattern"
  check "$what: left x.safetensors" [ ! -e x.safetensors ]
}
# refused_once <exit status> <our distinct lines> <pattern>
refused_once() {
  [ "$1" -ne 0 ] && [ -n "$2" ] && [ "$(wc -l <<<"$2")" -eq 1 ] && grep -qF -- "$3" <<<"$2"
}
mpi_bad "batch not a multiple of the ranks" "not a multiple of the 2 ranks" "$VQGPT" "${V[@]}" --batch 3 --steps 1 --out x.safetensors
mpi_bad "gpt batch not a multiple" "multiple" "$VQGPT" "${G[@]}" --batch 3 --steps 1 --out x.safetensors
mpi_bad "not a training command" "does not run data-parallel" "$VQGPT" sample --gpt "$FX/gpt_tiny.safetensors" --codes-out x.npy

finish cli_mpi
