#!/usr/bin/env bash
# CLI tests for `vqgpt sample`, `vqgpt train-gpt` and `vqgpt bench gpt` on the gpt_tiny and
# vqgan_tiny fixtures: the happy paths, and every bad input giving one error line, a non-zero
# exit and no output file.
# Usage: cli_gpt.sh <vqgpt binary> <fixtures dir>
set -uo pipefail
VQGPT=$(realpath "$1")
FIX=$(realpath "$2")
GPT=$FIX/gpt_tiny.safetensors
VQ=$FIX/vqgan_tiny.safetensors
source "$(dirname "$(realpath "$0")")/lib.sh"

# ---------------------------------------------------------------------------------------------
# sample: happy paths
ok "sample --help" "$VQGPT" sample --help
check "sample --help text lacks --top-p" grep -q -- "--top-p" out.txt
ok "greedy codes" "$VQGPT" sample --gpt "$GPT" --greedy --grid 4x8 --codes-out g1.npy
check "greedy codes shape $(npy_shape g1.npy)" [ "$(npy_shape g1.npy)" = "(4, 8)" ]
ok "greedy again, other seed" "$VQGPT" sample --gpt "$GPT" --greedy --grid 4x8 --seed 9 --codes-out g2.npy
check "greedy sampling depends on the seed" cmp -s g1.npy g2.npy
ok "seed 5" "$VQGPT" sample --gpt "$GPT" --grid 4x8 --num 2 --seed 5 --codes-out s5a.npy
ok "seed 5 again" "$VQGPT" sample --gpt "$GPT" --grid 4x8 --num 2 --seed 5 --codes-out s5b.npy
ok "seed 6" "$VQGPT" sample --gpt "$GPT" --grid 4x8 --num 2 --seed 6 --codes-out s6.npy
check "--seed is not reproducible" cmp -s s5a.npy s5b.npy
check "different seeds gave identical samples" ! cmp -s s5a.npy s6.npy
check "batch codes shape $(npy_shape s5a.npy)" [ "$(npy_shape s5a.npy)" = "(2, 4, 8)" ]
ok "decoded grid" "$VQGPT" sample --gpt "$GPT" --vqgan "$VQ" --grid 4x8 --num 3 --seed 1 \
  --temperature 0.7 --top-k 5 --top-p 0.9 --out grid.png --codes-out grid.npy
check "grid.png is not a PNG" is_png grid.png
check "decoded codes shape $(npy_shape grid.npy)" [ "$(npy_shape grid.npy)" = "(3, 4, 8)" ]
ok "--size in pixels" "$VQGPT" sample --gpt "$GPT" --vqgan "$VQ" --size 32x16 --top-k 1 --out size.png
check "size.png is not a PNG" is_png size.png
ok "one decoded sample" "$VQGPT" sample --gpt "$GPT" --vqgan "$VQ" --grid 4x8 --seed 4 --out one.png --codes-out one.npy
ok "decode its codes" "$VQGPT" decode --vqgan "$VQ" --codes one.npy --out one_decoded.png
check "sample --out differs from decode of its --codes-out" cmp -s one.png one_decoded.png
ok "top-k 1 equals greedy" "$VQGPT" sample --gpt "$GPT" --grid 4x8 --top-k 1 --seed 3 --codes-out k1.npy
check "--top-k 1 differs from --greedy" cmp -s g1.npy k1.npy

# sample: bad inputs
NOFILES="x.png x.npy"
# Without --gpt the shipped model for the request is used ($VQGPT_MODELS first).
mkdir -p shipped && cp "$GPT" shipped/gpt_landscape.safetensors
ok "no --gpt: the shipped default" env VQGPT_MODELS="$TMP/shipped" "$VQGPT" sample --grid 4x8 --greedy --codes-out dflt.npy
check "sample without --gpt did not use the shipped default" cmp -s dflt.npy g1.npy
bad "no output" "nothing to write" "$VQGPT" sample --gpt "$GPT" --grid 4x8
bad "--out without --vqgan" "--vqgan" "$VQGPT" sample --gpt "$GPT" --grid 4x8 --out x.png
bad "--size without --vqgan" "--vqgan" "$VQGPT" sample --gpt "$GPT" --size 32x16 --codes-out x.npy
bad "missing GPT file" "missing.safetensors" "$VQGPT" sample --gpt missing.safetensors --grid 4x8 --codes-out x.npy
bad "VQGAN given as GPT" "not a GPT" "$VQGPT" sample --gpt "$VQ" --grid 4x8 --codes-out x.npy
bad "grid beyond block_size" "block_size" "$VQGPT" sample --gpt "$GPT" --grid 8x8 --codes-out x.npy
bad "size beyond block_size" "block_size" "$VQGPT" sample --gpt "$GPT" --vqgan "$VQ" --size 32x32 --out x.png
bad "malformed grid" "HxW" "$VQGPT" sample --gpt "$GPT" --grid 4by8 --codes-out x.npy
bad "no grid known" "--grid" "$VQGPT" sample --gpt "$GPT" --codes-out x.npy
bad "size not a multiple" "multiple" "$VQGPT" sample --gpt "$GPT" --vqgan "$VQ" --size 30x16 --out x.png
bad "temperature 0" "temperature" "$VQGPT" sample --gpt "$GPT" --grid 4x8 --temperature 0 --codes-out x.npy
bad "temperature < 0" "temperature" "$VQGPT" sample --gpt "$GPT" --grid 4x8 --temperature -1 --codes-out x.npy
bad "top-k < 0" "top-k" "$VQGPT" sample --gpt "$GPT" --grid 4x8 --top-k -1 --codes-out x.npy
bad "top-k > vocab" "top-k" "$VQGPT" sample --gpt "$GPT" --grid 4x8 --top-k 81 --codes-out x.npy
bad "top-p 0" "top-p" "$VQGPT" sample --gpt "$GPT" --grid 4x8 --top-p 0 --codes-out x.npy
bad "top-p > 1" "top-p" "$VQGPT" sample --gpt "$GPT" --grid 4x8 --top-p 1.5 --codes-out x.npy
bad "num 0" "--num" "$VQGPT" sample --gpt "$GPT" --grid 4x8 --num 0 --codes-out x.npy
bad "class on unconditional" "not class-conditional" "$VQGPT" sample --gpt "$GPT" --grid 4x8 --class 0 --codes-out x.npy
bad "output directory missing" "nodir" "$VQGPT" sample --gpt "$GPT" --grid 4x8 --codes-out nodir/x.npy

# A GPT whose vocabulary (32) does not cover the 64-code VQGAN codebook.
python3 - small_vocab.safetensors <<'EOF'
import json, struct, sys
V, T, C, L = 32, 40, 8, 1
shapes = {"tok_emb.weight": [V, C], "pos_emb": [1, T, C], "ln_f.weight": [C], "ln_f.bias": [C],
          "head.weight": [V, C]}
for l in range(L):
    p = f"blocks.{l}."
    for n in ["ln1", "ln2"]:
        shapes[p + n + ".weight"] = [C]; shapes[p + n + ".bias"] = [C]
    for n in ["key", "query", "value", "proj"]:
        shapes[p + "attn." + n + ".weight"] = [C, C]; shapes[p + "attn." + n + ".bias"] = [C]
    shapes[p + "mlp.0.weight"] = [4 * C, C]; shapes[p + "mlp.0.bias"] = [4 * C]
    shapes[p + "mlp.2.weight"] = [C, 4 * C]; shapes[p + "mlp.2.bias"] = [C]
header, data, off = {}, b"", 0
for name, shape in shapes.items():
    n = 1
    for d in shape: n *= d
    blob = struct.pack("<%df" % n, *([1.0 if name.endswith("ln1.weight") or name.endswith("ln2.weight") or name == "ln_f.weight" else 0.0] * n))
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(blob)]}
    data += blob; off += len(blob)
header["__metadata__"] = {"format": "taming-gpt", "config": json.dumps(
    {"vocab_size": V, "block_size": T, "n_layer": L, "n_head": 1, "n_embd": C})}
h = json.dumps(header).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + data)
EOF
ok "small-vocab GPT alone" "$VQGPT" sample --gpt small_vocab.safetensors --grid 4x8 --codes-out sv.npy
bad "vocab does not cover codebook" "does not cover" "$VQGPT" sample --gpt small_vocab.safetensors --vqgan "$VQ" --grid 4x8 --out x.png

# ---------------------------------------------------------------------------------------------
# train-gpt: happy paths (two classes of tiny images, a tiny model, a few steps)
mkdir -p data/cats data/dogs flat empty
cp "$FIX/vqgan_tiny_input0.png" data/cats/a.png
cp "$FIX/vqgan_tiny_input1.png" data/cats/b.png
cp "$FIX/vqgan_tiny_input1.png" data/dogs/c.png
cp "$FIX/vqgan_tiny_input0.png" data/dogs/d.png
cp "$FIX/vqgan_tiny_input0.png" flat/a.png
cp "$FIX/vqgan_tiny_input1.png" flat/b.png
TRAIN=(--n-layer 1 --n-head 2 --n-embd 16 --batch 4 --crops 3 --warmup 2 --lr 1e-3 --log-every 4)
ok "train-gpt --help" "$VQGPT" train-gpt --help
ok "train class-conditional" "$VQGPT" train-gpt --vqgan "$VQ" --data data --out cls.safetensors \
  --classes --steps 8 --checkpoint-every 4 --eval-every 4 --val-fraction 0.25 "${TRAIN[@]}"
check "train-gpt did not encode 12 crops: $(cat err.txt)" grep -q "encoding: 12/12 crops" err.txt
check "no progress line for step 8" grep -q "step 8/8" err.txt
check "progress lacks tokens/s" grep -q "tokens/s" err.txt
check "progress lacks an ETA" grep -q "ETA" err.txt
check "no validation loss" grep -q "validation loss" err.txt
for f in cls.safetensors cls.safetensors.codes.npy cls.safetensors.labels.npy; do
  check "train-gpt output $f missing" [ -e "$f" ]
done
check "cached codes shape $(npy_shape cls.safetensors.codes.npy)" [ "$(npy_shape cls.safetensors.codes.npy)" = "(12, 8, 8)" ]
ok "resume class-conditional" "$VQGPT" train-gpt --vqgan "$VQ" --data data --out cls.safetensors --val-fraction 0.25 \
  --classes --steps 12 --resume "${TRAIN[@]}"
check "resume re-encoded the images" grep -q "reusing cached codes" err.txt
check "resume did not start at step 8" grep -q "resuming cls.safetensors at step 8" err.txt
check "resume did not reach step 12" grep -q "step 12/12" err.txt
ok "sample class 1 on the model's grid" "$VQGPT" sample --gpt cls.safetensors --vqgan "$VQ" --class 1 --num 2 --out cls.png --codes-out cls.npy
check "class sample shape $(npy_shape cls.npy)" [ "$(npy_shape cls.npy)" = "(2, 8, 8)" ]
check "cls.png is not a PNG" is_png cls.png
# --init: a new run (own settings, schedule and optimizer) from a trained model's weights
ok "fine-tune, 0 steps" "$VQGPT" train-gpt --vqgan "$VQ" --data data --out ft.safetensors --classes \
  --init cls.safetensors --steps 0 --val-fraction 0.25 "${TRAIN[@]}"
check "--init did not say where it started" grep -q "starting from the weights of cls.safetensors" err.txt
ok "greedy from the fine-tune start" "$VQGPT" sample --gpt ft.safetensors --class 1 --greedy --codes-out ft0.npy
ok "greedy from its source" "$VQGPT" sample --gpt cls.safetensors --class 1 --greedy --codes-out cls0.npy
check "--init did not start from the model's weights" cmp -s ft0.npy cls0.npy
ok "fine-tune, other lr" "$VQGPT" train-gpt --vqgan "$VQ" --data data --out ft.safetensors --classes \
  --init cls.safetensors --steps 4 --lr 5e-4 --pkeep 0.9 --overwrite --val-fraction 0.25 "${TRAIN[@]}"
check "fine-tune did not train 4 steps" grep -q "step 4/4" err.txt
ok "fine-tune resumes as its own run" "$VQGPT" train-gpt --vqgan "$VQ" --data data --out ft.safetensors \
  --classes --steps 6 --lr 5e-4 --pkeep 0.9 --resume --val-fraction 0.25 "${TRAIN[@]}"
check "fine-tune did not resume at step 4" grep -q "resuming ft.safetensors at step 4" err.txt
NOFILES="ft2.safetensors ft2.safetensors.codes.npy"
bad "init and resume" "not both" "$VQGPT" train-gpt --vqgan "$VQ" --data data --out cls.safetensors --classes --init cls.safetensors --resume
bad "init: missing model" "nofile.safetensors" "$VQGPT" train-gpt --vqgan "$VQ" --data data --out ft2.safetensors --classes --init nofile.safetensors
bad "init: other conditioning" "class-conditional" "$VQGPT" train-gpt --vqgan "$VQ" --data flat --out ft2.safetensors --init cls.safetensors
bad "init: other shape" "keeps its shape" "$VQGPT" train-gpt --vqgan "$VQ" --data data --out ft2.safetensors --classes --init cls.safetensors --n-layer 2
bad "init: a tokenizer for a model that has one" "carries its own tokenizer" "$VQGPT" train-gpt --vqgan "$VQ" --data data --out ft2.safetensors --captions --init cls.safetensors --tokenizer x.model
bad "init: other grid" "code grids" "$VQGPT" train-gpt --vqgan "$VQ" --data data --out ft2.safetensors --classes --init cls.safetensors --size 32x16
NOFILES=""
ok "train unconditional" "$VQGPT" train-gpt --vqgan "$VQ" --data flat --out unc.safetensors --steps 4 --val-fraction 0 "${TRAIN[@]}"
check "unconditional run wrote labels" [ ! -e unc.safetensors.labels.npy ]
ok "sample unconditional" "$VQGPT" sample --gpt unc.safetensors --codes-out unc.npy
check "unconditional sample shape $(npy_shape unc.npy)" [ "$(npy_shape unc.npy)" = "(8, 8)" ]

# class ids out of range on the class-conditional model
NOFILES="x.png x.npy"
bad "class too large" "out of range" "$VQGPT" sample --gpt cls.safetensors --class 2 --codes-out x.npy
bad "class negative" "out of range" "$VQGPT" sample --gpt cls.safetensors --class -3 --codes-out x.npy
bad "class missing" "class-conditional" "$VQGPT" sample --gpt cls.safetensors --codes-out x.npy

# train-gpt: bad inputs
NOFILES="new.safetensors new.safetensors.codes.npy new.safetensors.codes.key"
bad "train: no --data" "--data" "$VQGPT" train-gpt --vqgan "$VQ" --out new.safetensors
bad "train: no --vqgan" "--vqgan" "$VQGPT" train-gpt --data data --out new.safetensors
bad "train: no --out" "--out" "$VQGPT" train-gpt --vqgan "$VQ" --data data
bad "train: empty folder" "images found" "$VQGPT" train-gpt --vqgan "$VQ" --data empty --out new.safetensors
bad "train: missing folder" "nonexistent" "$VQGPT" train-gpt --vqgan "$VQ" --data nonexistent --out new.safetensors
bad "train: --classes on a flat folder" "sub-folders" "$VQGPT" train-gpt --vqgan "$VQ" --data flat --classes --out new.safetensors
bad "train: GPT given as VQGAN" "gpt_tiny" "$VQGPT" train-gpt --vqgan "$GPT" --data data --out new.safetensors
bad "train: pkeep 0" "pkeep" "$VQGPT" train-gpt --vqgan "$VQ" --data data --out new.safetensors --pkeep 0
bad "train: batch 0" "batch" "$VQGPT" train-gpt --vqgan "$VQ" --data data --out new.safetensors --batch 0
bad "train: heads do not divide width" "n-head" "$VQGPT" train-gpt --vqgan "$VQ" --data data --out new.safetensors --n-head 3 --n-embd 16
bad "train: output directory missing" "nodir" "$VQGPT" train-gpt --vqgan "$VQ" --data data --out nodir/g.safetensors
bad "train: resume missing" "does not exist" "$VQGPT" train-gpt --vqgan "$VQ" --data data --out new.safetensors --resume
NOFILES=""
bad "train: output exists" "exists" "$VQGPT" train-gpt --vqgan "$VQ" --data data --out cls.safetensors --classes
bad "train: resume with other conditioning" "class-conditional" "$VQGPT" train-gpt --vqgan "$VQ" --data flat --out cls.safetensors --resume --crops 3 --steps 14

# ---------------------------------------------------------------------------------------------
# bench gpt at a toy size
ok "bench gpt" "$VQGPT" bench gpt --layers 1 --embd 16 --heads 2 --vocab 32 --tokens 8 --train-steps 1
for line in "sample  batch 1" "sample  batch 8" "train   batch 4"; do
  check "bench gpt output lacks '$line': $(cat out.txt)" grep -q "$line" out.txt
done

finish cli_gpt
