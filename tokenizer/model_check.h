// Internal to tokenizer/: structural checks of a serialized SentencePiece model, made before
// SentencePiece parses it, for what SentencePiece 0.1.97 itself does not catch.
#ifndef VQGPT_TOKENIZER_MODEL_CHECK_H
#define VQGPT_TOKENIZER_MODEL_CHECK_H

#include <stddef.h>

// NULL when the n bytes are a complete ModelProto whose normalization tables are safe to
// use; otherwise what is wrong ("malformed or truncated", ...).
const char *vqgpt_tokenizer_model_problem(const void *data, size_t n);

#endif
