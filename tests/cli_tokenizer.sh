#!/usr/bin/env bash
# train-tokenizer and tokenize end to end: a tokenizer trained on captions written here gives
# the ids Debian's spm_encode gives with the same model; bad inputs are answered by one error
# line naming the file, a non-zero exit, and nothing left behind.
# Usage: cli_tokenizer.sh <vqgpt binary> <fixtures dir (unused)>
set -uo pipefail
VQGPT=$(realpath "$1")
source "$(dirname "$(realpath "$0")")/lib.sh"
# Files are given by full path ($TMP/...) where the error must name them as given.

# 150 captions in the forms the real models see.
items=("t-shirt" trousers pullover dress coat sandal shirt sneaker bag "ankle boot")
colours=(red green blue yellow white)
for i in "${!items[@]}"; do
  for c in "${!colours[@]}"; do
    a=${items[$i]} b=${items[$(((i * 3 + c + 1) % 10))]} ca=${colours[$c]} cb=${colours[$(((c + i + 2) % 5))]}
    echo "a $ca $a and a $cb $b"
    echo "a $cb $b to the right of a $ca $a"
    echo "$ca $a on the left, $cb $b on the right"
  done
done >captions.txt
mkdir out

# --- training --------------------------------------------------------------------------------
M=$TMP/out/tok.model
ok "train-tokenizer" "$VQGPT" train-tokenizer --text captions.txt --vocab 96 --out "$M"
check "train-tokenizer wrote no model" [ -s "$M" ]
check "train-tokenizer printed more than one line: $(cat err.txt)" [ "$(wc -l <err.txt)" -eq 1 ]
check "train-tokenizer left other files: $(ls out)" [ "$(ls out)" = "tok.model" ]
ok "train-tokenizer again" "$VQGPT" train-tokenizer --text captions.txt --vocab 96 --out again.model
check "the same captions gave a different model" cmp -s "$M" again.model
check "spm_export_vocab: not 96 pieces" [ "$(spm_export_vocab --model "$M" 2>/dev/null | wc -l)" -eq 96 ]

# --- tokenize agrees with spm_encode ---------------------------------------------------------
while IFS= read -r caption; do
  want=$(printf '%s\n' "$caption" | spm_encode --model "$M" --output_format=id)
  check "spm_encode gave no ids for '$caption'" [ -n "$want" ]
  ok "tokenize '$caption'" "$VQGPT" tokenize --tokenizer "$M" --text "$caption"
  check "'$caption': vqgpt '$(cat out.txt)', spm_encode '$want'" [ "$(cat out.txt)" = "$want" ]
  check "'$caption': tokenize printed on stderr: $(cat err.txt)" [ ! -s err.txt ]
done <<'EOF'
a red sneaker and a blue bag
a blue bag to the right of a red sneaker
red sneaker on the left, blue bag on the right
a white ankle boot and a yellow t-shirt
A Green PULLOVER to the right of a white dress
a purple hat next to an orange scarf
un sac bleu à droite d'une basket rouge
  two   spaces and a trailing one 
EOF
# Tabs count as spaces.
ok "tokenize with a tab" "$VQGPT" tokenize --tokenizer "$M" --text "$(printf 'a red\tbag')"
cp out.txt tab.txt
ok "tokenize with spaces" "$VQGPT" tokenize --tokenizer "$M" --text "a red bag"
check "a tab is not a space" cmp -s tab.txt out.txt

# --- help ------------------------------------------------------------------------------------
for cmd in train-tokenizer tokenize; do
  ok "$cmd --help" "$VQGPT" "$cmd" --help
  check "$cmd --help lacks its usage line" grep -q "usage: vqgpt $cmd" out.txt
done
ok "vqgpt --help" "$VQGPT" --help
check "train-tokenizer missing from vqgpt --help" grep -q "train-tokenizer" out.txt

# --- train-tokenizer errors ------------------------------------------------------------------
O=$TMP/out/new.model
: >empty.txt
printf '\n  \n\t\n' >blank.txt
printf 'a red bag\na blue\xff bag\n' >utf8.txt
printf 'a red bag\na blue\001 bag\n' >control.txt
NOFILES="$O*"
bad "missing text" "$TMP/none.txt: cannot open" "$VQGPT" train-tokenizer --text "$TMP/none.txt" --vocab 96 --out "$O"
bad "empty text" "$TMP/empty.txt: file is empty" "$VQGPT" train-tokenizer --text "$TMP/empty.txt" --vocab 96 --out "$O"
bad "blank text" "$TMP/blank.txt: no captions" "$VQGPT" train-tokenizer --text "$TMP/blank.txt" --vocab 96 --out "$O"
bad "invalid UTF-8" "$TMP/utf8.txt: line 2 is not valid UTF-8" "$VQGPT" train-tokenizer --text "$TMP/utf8.txt" --vocab 96 --out "$O"
bad "control character" "$TMP/control.txt: line 2 contains control character U+0001" "$VQGPT" train-tokenizer --text "$TMP/control.txt" --vocab 96 --out "$O"
bad "text is a directory" "not a regular file" "$VQGPT" train-tokenizer --text "$TMP" --vocab 96 --out "$O"
bad "vocab too small" "--vocab 8 is outside 16..65536" "$VQGPT" train-tokenizer --text captions.txt --vocab 8 --out "$O"
bad "vocab not a number" "--vocab expects an integer" "$VQGPT" train-tokenizer --text captions.txt --vocab 9x --out "$O"
bad "vocab beyond the text" "Vocabulary size too high (5000)" "$VQGPT" train-tokenizer --text captions.txt --vocab 5000 --out "$O"
bad "missing vocab" "missing required option --vocab" "$VQGPT" train-tokenizer --text captions.txt --out "$O"
NOFILES="" bad "missing out" "missing required option --out" "$VQGPT" train-tokenizer --text captions.txt --vocab 96
NOFILES="$TMP/no/dir/new.model*" bad "unwritable output" "$TMP/no/dir/new.model: cannot write" "$VQGPT" train-tokenizer --text captions.txt --vocab 96 --out "$TMP/no/dir/new.model"
check "failed runs left files: $(ls out)" [ "$(ls out)" = "tok.model" ]
# A failed run leaves an existing model as it was (so it is not in NOFILES, which are removed).
cp "$M" keep.model
NOFILES="" bad "existing output kept" "Vocabulary size too high" "$VQGPT" train-tokenizer --text captions.txt --vocab 5000 --out keep.model
check "a failed run changed the existing output" cmp -s "$M" keep.model

# --- tokenize errors -------------------------------------------------------------------------
head -c 500 "$M" >trunc.model
NOFILES=""  # tokenize writes no file
bad "missing model" "$TMP/none.model: cannot open" "$VQGPT" tokenize --tokenizer "$TMP/none.model" --text "a red bag"
bad "text as model" "$TMP/captions.txt: not a SentencePiece model" "$VQGPT" tokenize --tokenizer "$TMP/captions.txt" --text "a red bag"
bad "truncated model" "$TMP/trunc.model: not a SentencePiece model" "$VQGPT" tokenize --tokenizer "$TMP/trunc.model" --text "a red bag"
bad "whitespace prompt" "prompt is only whitespace" "$VQGPT" tokenize --tokenizer "$M" --text "   "
bad "control prompt" "control character U+001B" "$VQGPT" tokenize --tokenizer "$M" --text "$(printf 'a red\033[31m bag')"
bad "invalid UTF-8 prompt" "prompt is not valid UTF-8 (byte 2)" "$VQGPT" tokenize --tokenizer "$M" --text "$(printf 'a \xc3 bag')"
bad "huge prompt" "prompt has 100000 bytes, at most 65536" "$VQGPT" tokenize --tokenizer "$M" --text "$(head -c 100000 /dev/zero | tr '\0' a)"
bad "missing text option" "missing required option --text" "$VQGPT" tokenize --tokenizer "$M"

finish cli_tokenizer
