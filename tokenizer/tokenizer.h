// Text tokenizer for text-conditioned models: a SentencePiece model behind a C API.
// A model is the serialized SentencePiece ModelProto (the bytes of a .model file); a GPT file
// carries the same bytes as a U8 tensor, so loading from memory is the main path.
// Functions return 0 / non-NULL on success; on failure -1 / NULL and one line in
// vqgpt_last_error() (core/error.h). Nothing here prints or aborts.
#ifndef VQGPT_TOKENIZER_TOKENIZER_H
#define VQGPT_TOKENIZER_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

// Longest prompt, and longest caption line in a training file, in bytes.
#define TOKENIZER_MAX_TEXT_BYTES 65536
// Largest model accepted (a 64k-piece model is about 2 MiB; more is not a tokenizer).
#define TOKENIZER_MAX_MODEL_BYTES (64 << 20)
// Vocabulary sizes vqgpt_tokenizer_train accepts; the text may allow fewer (the error says how
// many).
#define TOKENIZER_MIN_VOCAB 16
#define TOKENIZER_MAX_VOCAB 65536

typedef struct vqgpt_tokenizer vqgpt_tokenizer;

// Reads a .model file (at most TOKENIZER_MAX_MODEL_BYTES). Errors name the path.
vqgpt_tokenizer *vqgpt_tokenizer_load_file(const char *path);
// Parses n bytes of a serialized model (copied: data may be freed afterwards). `source` names
// where they came from in errors ("gpt.safetensors: tensor tokenizer").
vqgpt_tokenizer *vqgpt_tokenizer_load_bytes(const void *data, size_t n, const char *source);
void vqgpt_tokenizer_free(vqgpt_tokenizer *tok);

// Number of pieces: ids run from 0 to vqgpt_tokenizer_vocab_size() - 1.
int vqgpt_tokenizer_vocab_size(const vqgpt_tokenizer *tok);
// The special ids, -1 when the model has none. vqgpt_tokenizer_train makes pad 0, unk 1, bos 2,
// eos 3; models from elsewhere may differ, so callers ask.
int vqgpt_tokenizer_pad_id(const vqgpt_tokenizer *tok);
int vqgpt_tokenizer_unk_id(const vqgpt_tokenizer *tok);
int vqgpt_tokenizer_bos_id(const vqgpt_tokenizer *tok);
int vqgpt_tokenizer_eos_id(const vqgpt_tokenizer *tok);

// The bytes the tokenizer was loaded from, exactly (to embed the model in a GPT file).
const void *vqgpt_tokenizer_model_bytes(const vqgpt_tokenizer *tok, size_t *n);

// Checks a prompt before tokenizing it: at most TOKENIZER_MAX_TEXT_BYTES, valid UTF-8, no
// control characters (U+0000-U+001F, U+007F-U+009F) except tab, newline and carriage return,
// which count as spaces; not empty or only whitespace. Errors start with "prompt".
int vqgpt_tokenizer_check_text(const char *text);

// Text -> ids, as SentencePiece encodes it (no bos/eos added; unknown characters become the
// unk id). The text is checked as by vqgpt_tokenizer_check_text, and tab/newline/CR become spaces.
// When more than max_ids ids would be needed it fails ("prompt needs 31 tokens, the model
// takes 24") and *n_ids is the number needed; on other errors *n_ids is 0.
int vqgpt_tokenizer_encode(const vqgpt_tokenizer *tok, const char *text, int32_t *ids, int max_ids,
                           int *n_ids);

// Ids -> text, malloc'd (caller frees); every id must be in [0, vocab size). Control pieces
// (pad, bos, eos) decode to nothing.
char *vqgpt_tokenizer_decode(const vqgpt_tokenizer *tok, const int32_t *ids, int n);

// Trains a BPE tokenizer of exactly vocab_size pieces on a caption file (UTF-8, one caption
// per line, blank lines skipped; case-folded and NFKC-normalized) and writes the .model to
// out_model_path atomically (no .vocab side file). Deterministic: the same file gives the
// same bytes. Errors name the file.
int vqgpt_tokenizer_train(const char *text_path, int vocab_size, const char *out_model_path);

#endif
