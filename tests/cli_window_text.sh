#!/usr/bin/env bash
# CLI tests for sliding-window sampling, image completion, text prompts, class names and
# classifier-free guidance: tiny models trained here in seconds on images the tiny fixtures
# draw, and every bad input giving one error line and no output.
# Usage: cli_window_text.sh <vqgpt binary> <fixtures dir>
set -uo pipefail
VQGPT=$(realpath "$1")
FIX=$(realpath "$2")
WIN=$FIX/window_tiny.safetensors
GPT=$FIX/gpt_tiny.safetensors
VQ=$FIX/vqgan_tiny.safetensors
source "$(dirname "$(realpath "$0")")/lib.sh"

# --- Sliding window: a grid larger than the 4x6 window, codes in range, seeds reproduce.
ok "window 9x13" "$VQGPT" sample --gpt "$WIN" --class 3 --grid 9x13 --num 2 --seed 4 --codes-out w1.npy
check "window sample shape $(npy_shape w1.npy)" [ "$(npy_shape w1.npy)" = "(2, 9, 13)" ]
check "no progress line: $(cat err.txt)" grep -q "117/117 positions" err.txt
ok "window 9x13 again" "$VQGPT" sample --gpt "$WIN" --class 3 --grid 9x13 --num 2 --seed 4 --codes-out w2.npy
check "same seed, different window samples" cmp -s w1.npy w2.npy
# Sample k depends only on the seed and k: one sample is the batch's first.
ok "window, one sample" "$VQGPT" sample --gpt "$WIN" --class 3 --grid 9x13 --num 1 --seed 4 --codes-out w3.npy
check "sample 0 alone differs from sample 0 of the batch" $PY - w1.npy w3.npy <<'PY'
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
sys.exit(0 if (a[0] == b).all() and a.max() < 64 and a.min() >= 0 else 1)
PY

# --- Completion: the kept positions are the given ones, the rest sampled.
ok "complete codes" "$VQGPT" sample --gpt "$WIN" --class 3 --init-codes w1.npy --keep 40 --seed 9 --codes-out c1.npy
check "completion shape $(npy_shape c1.npy)" [ "$(npy_shape c1.npy)" = "(2, 9, 13)" ]
check "completion did not keep the first 40 positions" $PY - w1.npy c1.npy <<'PY'
import sys, numpy as np
a, b = np.load(sys.argv[1]).reshape(2, -1), np.load(sys.argv[2]).reshape(2, -1)
sys.exit(0 if (a[:, :40] == b[:, :40]).all() and (a[:, 40:] != b[:, 40:]).any() else 1)
PY
ok "complete an image" "$VQGPT" sample --gpt "$WIN" --class 2 --vqgan "$VQ" --init-image "$FIX/vqgan_tiny_input0.png" --keep-rows 2 --num 2 --codes-out ci.npy
ok "encode the image" "$VQGPT" encode --vqgan "$VQ" --image "$FIX/vqgan_tiny_input0.png" --out enc.npy
check "image completion did not keep the top 2 code rows" $PY - enc.npy ci.npy <<'PY'
import sys, numpy as np
e, c = np.load(sys.argv[1]), np.load(sys.argv[2])
sys.exit(0 if c.shape == (2, 8, 8) and (c[:, :2] == e[:2]).all() else 1)
PY
NOFILES="x.png x.npy"
bad "keep beyond the grid" "beyond" "$VQGPT" sample --gpt "$WIN" --class 3 --init-codes w1.npy --keep 235 --codes-out x.npy
$PY -c "import numpy as np; np.save('oob.npy', np.full((9, 13), 64, dtype=np.int32))"
bad "init code out of range" "initial code 64" "$VQGPT" sample --gpt "$WIN" --class 3 --init-codes oob.npy --keep 5 --codes-out x.npy
bad "keep without init" "--keep goes with" "$VQGPT" sample --gpt "$WIN" --class 3 --keep 5 --codes-out x.npy
bad "init-codes without keep" "--keep" "$VQGPT" sample --gpt "$WIN" --class 3 --init-codes w1.npy --codes-out x.npy
bad "keep-rows beyond" "beyond" "$VQGPT" sample --gpt "$WIN" --class 2 --vqgan "$VQ" --init-image "$FIX/vqgan_tiny_input0.png" --keep-rows 9 --out x.png
bad "grid with init" "grid comes" "$VQGPT" sample --gpt "$WIN" --class 3 --init-codes w1.npy --keep 5 --grid 9x13 --codes-out x.npy
# A window larger than the block: gpt_tiny (block 33) told its grid is 6x6 (36 positions).
$PY - "$GPT" wide.safetensors <<'PY'
import sys, json, struct
raw = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', raw[:8])[0]
h = json.loads(raw[8:8 + n]); c = json.loads(h['__metadata__']['config']); c['grid'] = [6, 6]
h['__metadata__']['config'] = json.dumps(c); hb = json.dumps(h).encode(); hb += b' ' * (-len(hb) % 8)
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(hb)) + hb + raw[8 + n:])
PY
bad "window larger than the block" "block_size" "$VQGPT" sample --gpt wide.safetensors --grid 12x12 --codes-out x.npy

# --- The memory budget refuses a pass before allocating it.
NOFILES="x.png"
bad "over the memory budget" "VQGPT_MAX_MEMORY" env VQGPT_MAX_MEMORY=0.001 "$VQGPT" decode --vqgan "$VQ" --codes w3.npy --out x.png
bad "KV cache over the budget" "memory budget" env VQGPT_MAX_MEMORY=0.00001 "$VQGPT" sample --gpt "$WIN" --class 3 --grid 9x13 --num 64 --codes-out x.npy
# A trainer prints what it found first; its last line is the refusal, and nothing is written.
NOFILES="x.safetensors" bad_last "training over the budget" "memory budget" env VQGPT_MAX_MEMORY=0.001 \
  "$VQGPT" train-vqgan --data "$FIX/photos" --size 32 --config tiny --steps 2 --val 1 --out x.safetensors
NOFILES="x.png"
ok "within the budget" env VQGPT_MAX_MEMORY=1 "$VQGPT" decode --vqgan "$VQ" --codes w3.npy --out w3.png

# --- Images with captions: drawn by the tiny fixtures, captioned by their seed's parity.
mkdir -p data
for i in 0 1 2 3 4 5 6 7; do
  ok "draw image $i" "$VQGPT" sample --gpt "$WIN" --class $i --vqgan "$VQ" --grid 8x8 --seed $i --out data/img$i.png
  if [ $((i % 2)) -eq 0 ]; then echo "a red sneaker and a blue bag" >data/img$i.txt; else echo "a green coat on the left" >data/img$i.txt; fi
done
printf 'a red sneaker and a blue bag\na green coat on the left\nred sneaker on the left, blue bag on the right\n' >captions.txt
ok "train tokenizer" "$VQGPT" train-tokenizer --text captions.txt --vocab 40 --out tok.model
TRAIN=(train-gpt --vqgan "$VQ" --tokenizer tok.model --steps 6 --batch 4 --n-layer 1 --n-head 2 --n-embd 16 --log-every 3 --eval-every 3 --val-fraction 0.25)
ok "train text GPT" "$VQGPT" "${TRAIN[@]}" --data data --captions --cond-drop 0.2 --text-len 20 --out text.safetensors
check "caption count: $(grep captions err.txt)" grep -q "captions: 8 read, 0 truncated" err.txt
check "loading line does not say none are mirrored: $(head -n 3 err.txt)" grep -q "(none mirrored)" err.txt
# Captions can name sides, so their images are never mirrored: every cached grid is an image's
# own encoding. The same folder without captions mirrors half its crops (unless --no-flip).
for i in 0 1 2 3 4 5 6 7; do
  ok "encode image $i" "$VQGPT" encode --vqgan "$VQ" --image data/img$i.png --out enc$i.npy
done
ONLY_OWN='import sys, numpy as np
own = {np.load("enc%d.npy" % i).tobytes() for i in range(8)}
grids = np.load(sys.argv[1])
sys.exit(0 if grids.shape[0] >= 8 and all(g.tobytes() in own for g in grids) else 1)'
check "a captioned image was mirrored" $PY -c "$ONLY_OWN" text.safetensors.codes.npy
UNCOND=(train-gpt --vqgan "$VQ" --data data --steps 1 --batch 4 --n-layer 1 --n-head 2 --n-embd 16 --crops 4)
ok "train unconditional on the same folder" "$VQGPT" "${UNCOND[@]}" --out flip.safetensors
check "without captions no crop was mirrored" ! $PY -c "$ONLY_OWN" flip.safetensors.codes.npy
ok "train unconditional, --no-flip" "$VQGPT" "${UNCOND[@]}" --no-flip --out noflip.safetensors
check "--no-flip mirrored a crop" $PY -c "$ONLY_OWN" noflip.safetensors.codes.npy
ok "--no-flip on a cache made with flips" "$VQGPT" "${UNCOND[@]}" --no-flip --out flip.safetensors --overwrite
check "the cache made with flips was reused without them" $PY -c "$ONLY_OWN" flip.safetensors.codes.npy
ok "train text GPT, short prompts" "$VQGPT" "${TRAIN[@]}" --data data --captions --text-len 4 --out short.safetensors
check "truncation not counted: $(grep captions err.txt)" grep -q "captions: 8 read, 8 truncated to 4 tokens" err.txt
NOFILES="x.png"
bad "the GPT's VQGAN not found" "give --vqgan" "$VQGPT" sample --gpt text.safetensors --prompt "a red bag" --out x.png
cp "$VQ" .  # the VQGAN the GPT names, beside it: found without --vqgan
ok "prompt" "$VQGPT" sample --gpt text.safetensors --prompt "a red sneaker and a blue bag" --num 2 --seed 1 --out p.png --codes-out p1.npy
ok "prompt, --cfg 1" "$VQGPT" sample --gpt text.safetensors --prompt "a red sneaker and a blue bag" --num 2 --seed 1 --cfg 1 --codes-out p2.npy
check "--cfg 1 differs from unguided sampling" cmp -s p1.npy p2.npy
ok "prompt, --cfg 3" "$VQGPT" sample --gpt text.safetensors --prompt "a red sneaker and a blue bag" --num 2 --seed 1 --cfg 3 --codes-out p3.npy
check "--cfg 3 changed nothing" ! cmp -s p1.npy p3.npy
# A model's recommended settings apply when no flag is given; a flag overrides them.
ok "export with settings" "$VQGPT" export --in text.safetensors --out rec.safetensors --sampling '{"cfg": 3}'
ok "recommended cfg" "$VQGPT" sample --gpt rec.safetensors --prompt "a red sneaker and a blue bag" --num 2 --seed 1 --codes-out r3.npy
check "the stored cfg 3 differs from --cfg 3" cmp -s r3.npy p3.npy
ok "flag over the recommendation" "$VQGPT" sample --gpt rec.safetensors --prompt "a red sneaker and a blue bag" --num 2 --seed 1 --cfg 1 --codes-out r1.npy
check "--cfg 1 did not override the stored cfg" cmp -s r1.npy p1.npy
bad "bad settings" "unknown key" "$VQGPT" export --in text.safetensors --out x.npy --sampling '{"guidance": 3}'
ok "prompt, window" "$VQGPT" sample --gpt text.safetensors --prompt "a green coat" --grid 10x12 --cfg 2 --codes-out pw.npy
check "text window shape $(npy_shape pw.npy)" [ "$(npy_shape pw.npy)" = "(10, 12)" ]
bad "prompt too long" "the model takes 20" "$VQGPT" sample --gpt text.safetensors --prompt "a red sneaker and a blue bag to the right of a red sneaker" --codes-out x.npy
bad "empty prompt" "empty" "$VQGPT" sample --gpt text.safetensors --prompt "" --codes-out x.npy
bad "control characters" "control" "$VQGPT" sample --gpt text.safetensors --prompt "$(printf 'a red\001 bag')" --codes-out x.npy
head -c 100000 /dev/zero | tr '\0' 'a' >big.txt  # (1 MB is beyond the argument limit; test_tokenizer has it)
bad "100 kB prompt" "prompt" "$VQGPT" sample --gpt text.safetensors --prompt "$(cat big.txt)" --codes-out x.npy
bad "no prompt" "--prompt" "$VQGPT" sample --gpt text.safetensors --codes-out x.npy
bad "class on a text model" "not class-conditional" "$VQGPT" sample --gpt text.safetensors --class 1 --codes-out x.npy
# The same architecture with one codebook entry changed is another VQGAN.
$PY - "$VQ" other.safetensors <<'PY'
import sys, json, struct
raw = bytearray(open(sys.argv[1], 'rb').read()); n = struct.unpack('<Q', raw[:8])[0]
t = json.loads(raw[8:8 + n])['quantize.embedding.weight']; at = 8 + n + t['data_offsets'][0]
raw[at:at + 4] = struct.pack('<f', struct.unpack('<f', raw[at:at + 4])[0] + 0.5)
open(sys.argv[2], 'wb').write(raw)
PY
bad "other VQGAN" "trained with" "$VQGPT" sample --gpt text.safetensors --vqgan other.safetensors --prompt "a red bag" --out x.png
# Captions: missing, empty, not UTF-8, a directory.
NOFILES="bad.safetensors"
for case in missing empty latin1 dir; do
  rm -rf cap && cp -r data cap
  case $case in
    missing) rm cap/img3.txt; want="no caption" ;;
    empty) : >cap/img3.txt; want="empty" ;;
    latin1) printf 'a caf\xe9 bag\n' >cap/img3.txt; want="UTF-8" ;;
    dir) rm cap/img3.txt && mkdir cap/img3.txt; want="regular file" ;;
  esac
  bad "caption $case" "$want" "$VQGPT" "${TRAIN[@]}" --data cap --captions --out bad.safetensors
  check "caption $case: error does not name the file: $(cat err.txt)" grep -q "img3.txt" err.txt
done
bad "captions without tokenizer" "--tokenizer" "$VQGPT" train-gpt --vqgan "$VQ" --data data --captions --out bad.safetensors

# --- Classes by name, with guidance.
# A numeric prefix orders the folders and is not part of the name.
mkdir -p cls/0_cats cls/1_dogs
cp data/img0.png data/img1.png data/img2.png cls/0_cats/ && cp data/img3.png data/img4.png data/img5.png cls/1_dogs/
ok "train class GPT" "$VQGPT" train-gpt --vqgan "$VQ" --data cls --classes --cond-drop 0.25 --steps 4 --batch 2 --n-layer 1 --n-head 2 --n-embd 16 --val-fraction 0 --out cls.safetensors
ok "list classes" "$VQGPT" sample --gpt cls.safetensors --list-classes
check "class list: $(cat out.txt)" [ "$(cat out.txt)" = "$(printf '0\tcats\n1\tdogs')" ]
ok "class by name" "$VQGPT" sample --gpt cls.safetensors --class dogs --cfg 2 --seed 2 --codes-out n1.npy
ok "class by id" "$VQGPT" sample --gpt cls.safetensors --class 1 --cfg 2 --seed 2 --codes-out n2.npy
check "--class dogs differs from --class 1" cmp -s n1.npy n2.npy
NOFILES="x.npy"
bad "unknown class name" "not a class" "$VQGPT" sample --gpt cls.safetensors --class birds --codes-out x.npy
bad "guidance without a null class" "cannot be guided" "$VQGPT" sample --gpt "$WIN" --class 3 --cfg 2 --codes-out x.npy
bad "guidance on unconditional" "unconditional" "$VQGPT" sample --gpt "$GPT" --grid 4x8 --cfg 2 --codes-out x.npy

finish cli_window_text
