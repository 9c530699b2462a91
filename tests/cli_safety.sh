#!/usr/bin/env bash
# What an attacker or a careless user can do to the commands, each answered by one error line
# (starting "vqgpt", naming the file or option), a non-zero exit and nothing written:
# hostile GPT / LPIPS files, formats that do not match the command, numbers that diverge or do
# not fit, outputs that exist (checkpoints, links, devices, FIFOs, directories), stale
# temporaries of killed runs, and resumes with changed settings.
# Usage: cli_safety.sh <vqgpt binary> <fixtures dir>
set -uo pipefail
VQGPT=$(realpath "$1")
FIX=$(realpath "$2")
GPT=$FIX/gpt_tiny.safetensors
VQ=$FIX/vqgan_tiny.safetensors
PHOTOS=$FIX/photos
source "$(dirname "$(realpath "$0")")/lib.sh"
# Training and sampling print progress before a refusal (bad_last); the others exactly one line.

# edit.py SRC DST poke NAME VALUE INDEX | extra NAME | meta KEY VALUE: a copy of a safetensors
# file with one F32 element set, an extra F32 tensor, or a metadata value changed.
cat >edit.py <<'EOF'
import json, struct, sys
def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]
def save(path, h, data):
    b = json.dumps(h).encode()
    b += b" " * (-len(b) % 8)
    open(path, "wb").write(struct.pack("<Q", len(b)) + b + data)
src, dst, op, name = sys.argv[1:5]
h, data = load(src)
if op == "poke":
    o = h[name]["data_offsets"][0] + 4 * int(sys.argv[6])
    data = data[:o] + struct.pack("<f", float(sys.argv[5])) + data[o + 4:]
elif op == "extra":
    h[name] = {"dtype": "F32", "shape": [2], "data_offsets": [len(data), len(data) + 8]}
    data += b"\0" * 8
elif op == "meta":
    h["__metadata__"][name] = sys.argv[5]
save(dst, h, data)
EOF

# ---------------------------------------------------------------------------------------------
# GPT and LPIPS files: non-finite weights, tensors the config does not describe, formats
NOFILES="x.npy x.png"
$PY edit.py "$GPT" gpt_nan.safetensors poke blocks.0.mlp.0.weight nan 7
$PY edit.py "$GPT" gpt_inf.safetensors poke head.weight inf 0
$PY edit.py "$GPT" gpt_extra.safetensors extra blocks.0.attn.extra
$PY edit.py "$GPT" gpt_noformat.safetensors meta format taming-gpt-v0
bad_last "GPT with a NaN weight" "tensor 'blocks.0.mlp.0.weight' holds a non-finite value (nan at index 7)" \
  "$VQGPT" sample --gpt gpt_nan.safetensors --grid 4x8 --codes-out x.npy
bad_last "GPT with an infinite weight" "'head.weight' holds a non-finite value (inf" \
  "$VQGPT" sample --gpt gpt_inf.safetensors --grid 4x8 --codes-out x.npy
bad_last "GPT with an unknown tensor" "tensor 'blocks.0.attn.extra' is not part of the model" \
  "$VQGPT" sample --gpt gpt_extra.safetensors --grid 4x8 --codes-out x.npy
# The fixture holds the reference's blocks.{i}.attn.mask buffers, which are accepted.
check "gpt_tiny has no attn.mask buffer to accept" grep -q '"blocks.0.attn.mask"' "$GPT"
ok "GPT with attention-mask buffers" "$VQGPT" sample --gpt "$GPT" --grid 4x8 --codes-out m.npy
bad_last "GPT of another format" "format is 'taming-gpt-v0', not a GPT model" \
  "$VQGPT" sample --gpt gpt_noformat.safetensors --grid 4x8 --codes-out x.npy
bad "GPT given to encode" "format is 'taming-gpt', not a VQGAN ('taming-vqgan')" \
  "$VQGPT" encode --vqgan "$GPT" --image "$FIX/vqgan_tiny_input0.png" --out x.npy
bad "discriminator given to decode" "format is 'taming-patchgan', not a VQGAN" \
  "$VQGPT" decode --vqgan "$FIX/disc_tiny.safetensors" --codes m.npy --out x.png
bad "export of a GPT with a NaN" "holds a non-finite value" \
  "$VQGPT" export --in gpt_nan.safetensors --out x.npy
$PY edit.py "$FIX/lpips_rand.safetensors" lpips_nan.safetensors poke lin2.model.1.weight nan 1
NOFILES="v.safetensors"
bad_last "LPIPS with a NaN weight" "tensor 'lin2.model.1.weight' holds a non-finite value" \
  "$VQGPT" train-vqgan --data "$PHOTOS" --size 32 --config tiny --steps 1 --batch 1 --val 1 \
  --lpips lpips_nan.safetensors --out v.safetensors
bad_last "VQGAN given as LPIPS" "not LPIPS weights ('taming-lpips')" \
  "$VQGPT" train-vqgan --data "$PHOTOS" --size 32 --config tiny --steps 1 --batch 1 --val 1 \
  --lpips "$VQ" --out v.safetensors
rm -f lpips_nan.safetensors

# ---------------------------------------------------------------------------------------------
# Numbers: sampling at a vanishing temperature is greedy; integer options do not wrap
ok "greedy" "$VQGPT" sample --gpt "$GPT" --grid 4x8 --greedy --codes-out greedy.npy
for t in 1e-45 1e-38; do
  ok "temperature $t" "$VQGPT" sample --gpt "$GPT" --grid 4x8 --temperature $t --seed 5 --codes-out t.npy
  check "--temperature $t differs from --greedy" cmp -s greedy.npy t.npy
done
NOFILES="x.npy v.safetensors"
bad_last "sample --num past int" "--num must be an integer in [-2147483648, 2147483647]" \
  "$VQGPT" sample --gpt "$GPT" --grid 4x8 --num 4294967297 --codes-out x.npy
bad_last "train-vqgan --n-embed past its range" "--n-embed must be an integer in [0, 16777216], got '4294967297'" \
  "$VQGPT" train-vqgan --data "$PHOTOS" --config tiny --n-embed 4294967297 --out v.safetensors
bad_last "train-vqgan --ndf past its range" "--ndf must be an integer in [1, 4096]" \
  "$VQGPT" train-vqgan --data "$PHOTOS" --config tiny --ndf 4294967297 --out v.safetensors
bad_last "train-vqgan --batch 0" "--batch must be an integer in [1, 256], got '0'" \
  "$VQGPT" train-vqgan --data "$PHOTOS" --config tiny --batch 0 --out v.safetensors
bad_last "train-vqgan --steps beyond long" "--steps must be an integer" \
  "$VQGPT" train-vqgan --data "$PHOTOS" --config tiny --steps 99999999999999999999 --out v.safetensors
bad "encode --resize negative" "--resize must be an integer in [0, 16384]" \
  "$VQGPT" encode --vqgan "$VQ" --image "$FIX/vqgan_tiny_input0.png" --resize -32 --out x.npy
cat >huge.json <<'EOF'
{"embed_dim": 16, "n_embed": 64, "ddconfig": {"double_z": false, "z_channels": 16, "resolution": 32,
 "in_channels": 3, "out_ch": 3, "ch": 65536, "ch_mult": [1, 65536], "num_res_blocks": 1,
 "attn_resolutions": [], "dropout": 0.0}}
EOF
bad_last "config whose channel product overflows" "ch * ch_mult[1] = 4294967296 channels, more than the 65536 supported" \
  "$VQGPT" train-vqgan --data "$PHOTOS" --config huge.json --size 32 --out v.safetensors
sed -i 's/"ch": 65536, "ch_mult": \[1, 65536\]/"ch": 8192, "ch_mult": [1, 8]/' huge.json
bad_last "config with too many parameters" "parameters, more than the" \
  "$VQGPT" train-vqgan --data "$PHOTOS" --config huge.json --size 32 --val 1 --out v.safetensors
bad_last "discriminator too large" "patchgan: ndf 4096" \
  "$VQGPT" train-vqgan --data "$PHOTOS" --config tiny --size 32 --ndf 4096 --val 1 --out v.safetensors

# Divergence: training stops at the step it happens, naming the loss term, and saves nothing.
VQARGS=(--data "$PHOTOS" --size 32 --config tiny --batch 2 --val 1 --log-every 1 --sample-every 100 --seed 3)
bad_last "train-vqgan --lr 1e9" "training diverged: the l1 loss is nan; stopped without saving it" \
  "$VQGPT" train-vqgan "${VQARGS[@]}" --steps 6 --lr 1e9 --disc-start 100 --out v.safetensors
check "divergence not reported at step 2: $(tail -1 err.txt)" grep -q "^vqgpt train-vqgan: step 2: " err.txt
# With a checkpoint every step, the last one written is the last finite one.
NOFILES=""
bad_last "train-vqgan --lr 1e9, saving every step" "training diverged" \
  "$VQGPT" train-vqgan "${VQARGS[@]}" --steps 6 --lr 1e9 --disc-start 100 --save-every 1 --out div.safetensors
ok "the checkpoint before the divergence loads" "$VQGPT" encode --vqgan div.safetensors --image "$FIX/vqgan_tiny_input0.png" --out div.npy

mkdir -p data/a data/b
cp "$FIX/vqgan_tiny_input0.png" data/a/0.png
cp "$FIX/vqgan_tiny_input1.png" data/b/1.png
GPTARGS=(--vqgan "$VQ" --data data --n-layer 1 --n-head 2 --n-embd 16 --batch 2 --warmup 0 --log-every 1 --val-fraction 0)
NOFILES="g.safetensors"
bad_last "train-gpt --lr 3e38" "step 1: training diverged: the update made a parameter non-finite" \
  "$VQGPT" train-gpt "${GPTARGS[@]}" --lr 3e38 --min-lr 0 --steps 1 --out g.safetensors
bad_last "train-gpt --batch past int" "--batch must be an integer in [-2147483648, 2147483647]" \
  "$VQGPT" train-gpt "${GPTARGS[@]}" --batch 4294967298 --steps 1 --out g.safetensors

# ---------------------------------------------------------------------------------------------
# Files: existing outputs, resumes with other settings, stale temporaries, special files
ok "train-vqgan" "$VQGPT" train-vqgan "${VQARGS[@]}" --steps 2 --lr 1e-3 --disc-start 1 --out v.safetensors
cp v.safetensors v_before.safetensors
NOFILES=""
bad_last "train-vqgan onto an existing checkpoint" "v.safetensors exists: pass --resume to continue it or --overwrite" \
  "$VQGPT" train-vqgan "${VQARGS[@]}" --steps 2 --lr 1e-3 --disc-start 1 --out v.safetensors
check "a refused run changed the checkpoint" cmp -s v.safetensors v_before.safetensors
bad_last "--resume and --overwrite" "not both" \
  "$VQGPT" train-vqgan "${VQARGS[@]}" --steps 2 --out v.safetensors --resume --overwrite
bad_last "resume, other batch" "--batch is 3 for this run but the checkpoint was trained with 2" \
  "$VQGPT" train-vqgan "${VQARGS[@]}" --batch 3 --steps 4 --lr 1e-3 --disc-start 1 --out v.safetensors --resume
bad_last "resume, other lr" "--lr is 0.002 for this run but the checkpoint was trained with 0.001" \
  "$VQGPT" train-vqgan "${VQARGS[@]}" --steps 4 --lr 2e-3 --disc-start 1 --out v.safetensors --resume
bad_last "resume, other GAN start" "--disc-start is 3 for this run but the checkpoint was trained with 1" \
  "$VQGPT" train-vqgan "${VQARGS[@]}" --steps 4 --lr 1e-3 --disc-start 3 --out v.safetensors --resume
bad_last "resume, other GAN weight" "--disc-weight is 0.5 for this run but the checkpoint was trained with 0.8" \
  "$VQGPT" train-vqgan "${VQARGS[@]}" --steps 4 --lr 1e-3 --disc-start 1 --disc-weight 0.5 --out v.safetensors --resume
bad_last "resume, other seed" "--seed is 4 for this run" \
  "$VQGPT" train-vqgan "${VQARGS[@]}" --steps 4 --lr 1e-3 --disc-start 1 --seed 4 --out v.safetensors --resume
bad_last "resume, other scale" "--scale is 48 for this run but the checkpoint was trained with 32" \
  "$VQGPT" train-vqgan "${VQARGS[@]}" --steps 4 --lr 1e-3 --disc-start 1 --scale 48 --out v.safetensors --resume
bad_last "resume, no mirroring" "--no-flip is yes for this run but the checkpoint was trained with no" \
  "$VQGPT" train-vqgan "${VQARGS[@]}" --steps 4 --lr 1e-3 --disc-start 1 --no-flip --out v.safetensors --resume
# A checkpoint of a vqgpt that recorded neither (it always mirrored; its scale is unknown).
$PY - v.safetensors old.safetensors <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n]); st = json.loads(h["__metadata__"]["train_state"])
del st["settings"]["--scale"], st["settings"]["--no-flip"]
h["__metadata__"]["train_state"] = json.dumps(st)
hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + raw[8 + n:])
PY
cp old.safetensors old_before.safetensors
bad_last "resume an older checkpoint without mirroring" "--no-flip is yes for this run but the checkpoint was trained with no" \
  "$VQGPT" train-vqgan "${VQARGS[@]}" --steps 3 --lr 1e-3 --disc-start 1 --no-flip --out old.safetensors --resume
check "a refused resume changed the older checkpoint" cmp -s old.safetensors old_before.safetensors
ok "resume an older checkpoint (scale not recorded)" \
  "$VQGPT" train-vqgan "${VQARGS[@]}" --steps 3 --lr 1e-3 --disc-start 1 --scale 48 --out old.safetensors --resume
bad_last "resume, other codebook size" "\"n_embed\" is 64 in the checkpoint, 32 in this run" \
  "$VQGPT" train-vqgan "${VQARGS[@]}" --steps 4 --lr 1e-3 --disc-start 1 --n-embed 32 --out v.safetensors --resume
bad_last "resume of a GPT file" "format is 'taming-gpt', not a VQGAN checkpoint" \
  "$VQGPT" train-vqgan "${VQARGS[@]}" --steps 4 --out "$GPT" --resume
check "a refused resume changed the checkpoint" cmp -s v.safetensors v_before.safetensors
# A killed run's temporary (its process gone) is removed by the next run; a live one's stays.
sh -c 'exit 0' &
dead=$!
wait $dead
echo stale >"v.safetensors.tmp.$dead"
echo live >"v.safetensors.tmp.$$"
ok "resume, same settings, more steps" "$VQGPT" train-vqgan "${VQARGS[@]}" --steps 3 --lr 1e-3 --disc-start 1 --out v.safetensors --resume
check "resume did not start at step 2" grep -q "resumed v.safetensors at step 2" err.txt
check "stale temporary of a dead process left" [ ! -e "v.safetensors.tmp.$dead" ]
check "temporary of a live process removed" [ -e "v.safetensors.tmp.$$" ]
rm -f "v.safetensors.tmp.$$"
ok "train-vqgan --overwrite" "$VQGPT" train-vqgan "${VQARGS[@]}" --steps 1 --lr 1e-3 --out v.safetensors --overwrite

ok "train-gpt" "$VQGPT" train-gpt "${GPTARGS[@]}" --steps 2 --lr 1e-3 --out g.safetensors
bad_last "train-gpt resume, other lr" "--lr is 0.002 for this run but the checkpoint was trained with 0.001" \
  "$VQGPT" train-gpt "${GPTARGS[@]}" --steps 4 --lr 2e-3 --out g.safetensors --resume
bad_last "train-gpt resume, other batch" "--batch is 1 for this run but the checkpoint was trained with 2" \
  "$VQGPT" train-gpt "${GPTARGS[@]}" --steps 4 --lr 1e-3 --batch 1 --out g.safetensors --resume
bad_last "train-gpt resume, other shape" "--n-layer is 2 for this run but g.safetensors has 1" \
  "$VQGPT" train-gpt "${GPTARGS[@]}" --steps 4 --lr 1e-3 --n-layer 2 --out g.safetensors --resume
bad_last "train-gpt resume, no mirroring" "codes were made with --size 32x32 --scale 32 --crops 1, this run's with --size 32x32 --scale 32 --crops 1 --no-flip" \
  "$VQGPT" train-gpt "${GPTARGS[@]}" --steps 4 --lr 1e-3 --no-flip --out g.safetensors --resume
bad_last "train-gpt resume, other scale" "this run's with --size 32x32 --scale 40 --crops 1" \
  "$VQGPT" train-gpt "${GPTARGS[@]}" --steps 4 --lr 1e-3 --scale 40 --out g.safetensors --resume
# A checkpoint of a vqgpt that did not record how its codes were made is not checked for it.
$PY - g.safetensors g_old.safetensors <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n]); st = json.loads(h["__metadata__"]["train_state"])
del st["data"]
h["__metadata__"]["train_state"] = json.dumps(st)
hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + raw[8 + n:])
PY
ok "train-gpt resume of an older checkpoint" "$VQGPT" train-gpt "${GPTARGS[@]}" --steps 3 --lr 1e-3 --no-flip --out g_old.safetensors --resume
ok "train-gpt resume, same settings" "$VQGPT" train-gpt "${GPTARGS[@]}" --steps 3 --lr 1e-3 --out g.safetensors --resume
bad_last "train-gpt resume of a VQGAN file" "not a GPT model" \
  "$VQGPT" train-gpt "${GPTARGS[@]}" --steps 4 --out v.safetensors --resume

# Outputs that exist and are not regular files are never replaced.
ok "encode" "$VQGPT" encode --vqgan "$VQ" --image "$FIX/vqgan_tiny_input0.png" --out c.npy
echo precious >precious.txt
ln -s precious.txt link.png
ln -s precious.txt link.safetensors
mkfifo fifo.npy
mkdir dir.png
bad "decode onto a symbolic link" "link.png: cannot write: it exists and is a symbolic link, not a regular file" \
  "$VQGPT" decode --vqgan "$VQ" --codes c.npy --out link.png
bad "encode onto a FIFO" "fifo.npy: cannot write: it exists and is a FIFO" \
  "$VQGPT" encode --vqgan "$VQ" --image "$FIX/vqgan_tiny_input0.png" --out fifo.npy
bad_last "sample onto a directory" "it exists and is a directory" \
  "$VQGPT" sample --gpt "$GPT" --grid 4x8 --codes-out dir.png
bad "decode onto a device" "/dev/null: cannot write: it exists and is a character device" \
  "$VQGPT" decode --vqgan "$VQ" --codes c.npy --out /dev/null
bad_last "train-vqgan onto a symbolic link" "is a symbolic link" \
  "$VQGPT" train-vqgan "${VQARGS[@]}" --steps 1 --out link.safetensors --overwrite
bad_last "train-gpt onto a FIFO" "is a FIFO" \
  "$VQGPT" train-gpt "${GPTARGS[@]}" --steps 1 --out fifo.npy --overwrite
check "the link link.png was replaced" [ -L link.png ]
check "the link link.safetensors was replaced" [ -L link.safetensors ]
check "the FIFO fifo.npy was replaced" [ -p fifo.npy ]
check "the directory dir.png was replaced" [ -d dir.png ]
check "a link's target was written" [ "$(cat precious.txt)" = precious ]

finish cli_safety
