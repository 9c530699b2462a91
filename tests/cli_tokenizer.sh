#!/usr/bin/env bash
# train-tokenizer and tokenize end to end: a tokenizer trained on captions written here gives
# the ids Debian's spm_encode gives with the same model; bad inputs are answered by one error
# line naming the file, a non-zero exit, and nothing left behind.
set -u
VQGPT=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
passed=0
failed=0

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

# expect_error NAME NEEDLE OUTFILE CMD...: non-zero exit, exactly one stderr line containing
# NEEDLE, nothing on stdout, no OUTFILE (nor a temporary beside it) left behind.
expect_error() {
  local name=$1 needle=$2 out=$3
  shift 3
  "$@" >"$T/stdout" 2>"$T/stderr"
  local rc=$?
  local lines
  lines=$(wc -l <"$T/stderr")
  if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then
    bad "$name: exit status $rc"
  elif [ "$lines" -ne 1 ]; then
    bad "$name: expected one error line, got $lines: $(cat "$T/stderr")"
  elif ! grep -qF -- "$needle" "$T/stderr"; then
    bad "$name: error lacks '$needle': $(cat "$T/stderr")"
  elif [ -s "$T/stdout" ]; then
    bad "$name: printed on stdout: $(cat "$T/stdout")"
  elif [ -n "$out" ] && ls "$out"* >/dev/null 2>&1; then
    bad "$name: output file left behind"
  else
    ok
  fi
}

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
done >"$T/captions.txt"
mkdir "$T/out"

# --- training --------------------------------------------------------------------------------
M=$T/out/tok.model
if "$VQGPT" train-tokenizer --text "$T/captions.txt" --vocab 96 --out "$M" 2>"$T/log" && [ -s "$M" ]; then ok; else bad "train-tokenizer: $(cat "$T/log")"; fi
[ "$(ls "$T/out")" = "tok.model" ] && ok || bad "train-tokenizer left other files: $(ls "$T/out")"
[ "$(wc -l <"$T/log")" -eq 1 ] && ok || bad "train-tokenizer printed more than one line: $(cat "$T/log")"
"$VQGPT" train-tokenizer --text "$T/captions.txt" --vocab 96 --out "$T/again.model" 2>/dev/null
cmp -s "$M" "$T/again.model" && ok || bad "the same captions gave a different model"
[ "$(spm_export_vocab --model "$M" 2>/dev/null | wc -l)" -eq 96 ] && ok || bad "spm_export_vocab: not 96 pieces"

# --- tokenize agrees with spm_encode ---------------------------------------------------------
while IFS= read -r caption; do
  want=$(printf '%s\n' "$caption" | spm_encode --model "$M" --output_format=id)
  got=$("$VQGPT" tokenize --tokenizer "$M" --text "$caption" 2>"$T/err")
  if [ -n "$want" ] && [ "$got" = "$want" ] && [ ! -s "$T/err" ]; then ok; else bad "'$caption': vqgpt '$got', spm_encode '$want' $(cat "$T/err")"; fi
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
[ "$("$VQGPT" tokenize --tokenizer "$M" --text "$(printf 'a red\tbag')")" = "$("$VQGPT" tokenize --tokenizer "$M" --text "a red bag")" ] && ok || bad "a tab is not a space"

# --- help ------------------------------------------------------------------------------------
for cmd in train-tokenizer tokenize; do
  "$VQGPT" "$cmd" --help >"$T/help" 2>&1 && grep -q "usage: vqgpt $cmd" "$T/help" && ok || bad "$cmd --help"
done
"$VQGPT" --help | grep -q "train-tokenizer" && ok || bad "train-tokenizer missing from vqgpt --help"

# --- train-tokenizer errors ------------------------------------------------------------------
O=$T/out/new.model
: >"$T/empty.txt"
printf '\n  \n\t\n' >"$T/blank.txt"
printf 'a red bag\na blue\xff bag\n' >"$T/utf8.txt"
printf 'a red bag\na blue\001 bag\n' >"$T/control.txt"
expect_error "missing text" "$T/none.txt: cannot open" "$O" "$VQGPT" train-tokenizer --text "$T/none.txt" --vocab 96 --out "$O"
expect_error "empty text" "$T/empty.txt: file is empty" "$O" "$VQGPT" train-tokenizer --text "$T/empty.txt" --vocab 96 --out "$O"
expect_error "blank text" "$T/blank.txt: no captions" "$O" "$VQGPT" train-tokenizer --text "$T/blank.txt" --vocab 96 --out "$O"
expect_error "invalid UTF-8" "$T/utf8.txt: line 2 is not valid UTF-8" "$O" "$VQGPT" train-tokenizer --text "$T/utf8.txt" --vocab 96 --out "$O"
expect_error "control character" "$T/control.txt: line 2 contains control character U+0001" "$O" "$VQGPT" train-tokenizer --text "$T/control.txt" --vocab 96 --out "$O"
expect_error "text is a directory" "not a regular file" "$O" "$VQGPT" train-tokenizer --text "$T" --vocab 96 --out "$O"
expect_error "vocab too small" "--vocab 8 is outside 16..65536" "$O" "$VQGPT" train-tokenizer --text "$T/captions.txt" --vocab 8 --out "$O"
expect_error "vocab not a number" "--vocab expects an integer" "$O" "$VQGPT" train-tokenizer --text "$T/captions.txt" --vocab 9x --out "$O"
expect_error "vocab beyond the text" "Vocabulary size too high (5000)" "$O" "$VQGPT" train-tokenizer --text "$T/captions.txt" --vocab 5000 --out "$O"
expect_error "missing vocab" "missing required option --vocab" "$O" "$VQGPT" train-tokenizer --text "$T/captions.txt" --out "$O"
expect_error "missing out" "missing required option --out" "" "$VQGPT" train-tokenizer --text "$T/captions.txt" --vocab 96
expect_error "unwritable output" "$T/no/dir/new.model: cannot write" "$T/no/dir/new.model" "$VQGPT" train-tokenizer --text "$T/captions.txt" --vocab 96 --out "$T/no/dir/new.model"
[ "$(ls "$T/out")" = "tok.model" ] && ok || bad "failed runs left files: $(ls "$T/out")"
# A failed run leaves an existing model as it was.
cp "$M" "$T/keep.model"
expect_error "existing output kept" "Vocabulary size too high" "" "$VQGPT" train-tokenizer --text "$T/captions.txt" --vocab 5000 --out "$T/keep.model"
cmp -s "$M" "$T/keep.model" && ok || bad "a failed run changed the existing output"

# --- tokenize errors -------------------------------------------------------------------------
head -c 500 "$M" >"$T/trunc.model"
expect_error "missing model" "$T/none.model: cannot open" "" "$VQGPT" tokenize --tokenizer "$T/none.model" --text "a red bag"
expect_error "text as model" "$T/captions.txt: not a SentencePiece model" "" "$VQGPT" tokenize --tokenizer "$T/captions.txt" --text "a red bag"
expect_error "truncated model" "$T/trunc.model: not a SentencePiece model" "" "$VQGPT" tokenize --tokenizer "$T/trunc.model" --text "a red bag"
expect_error "whitespace prompt" "prompt is only whitespace" "" "$VQGPT" tokenize --tokenizer "$M" --text "   "
expect_error "control prompt" "control character U+001B" "" "$VQGPT" tokenize --tokenizer "$M" --text "$(printf 'a red\033[31m bag')"
expect_error "invalid UTF-8 prompt" "prompt is not valid UTF-8 (byte 2)" "" "$VQGPT" tokenize --tokenizer "$M" --text "$(printf 'a \xc3 bag')"
expect_error "huge prompt" "prompt has 100000 bytes, at most 65536" "" "$VQGPT" tokenize --tokenizer "$M" --text "$(head -c 100000 /dev/zero | tr '\0' a)"
expect_error "missing text option" "missing required option --text" "" "$VQGPT" tokenize --tokenizer "$M"

echo "cli_tokenizer: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
