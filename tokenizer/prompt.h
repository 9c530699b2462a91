// Prompts of text-conditional GPTs: text -> the text_len condition tokens (tokenizer ids
// shifted past the codes, right-padded with the pad token; gpt.h describes the layout), and
// caption files beside training images.
#ifndef VQGPT_PROMPT_H
#define VQGPT_PROMPT_H

#include <stdbool.h>
#include <stdint.h>

#include "stage2_transformer/gpt.h"
#include "tokenizer/tokenizer.h"

// out: (text_len) condition tokens. A text needing more than text_len tokens is an error
// ("prompt needs 31 tokens, the model takes 24") unless truncate, which keeps the first
// text_len and sets *truncated (may be NULL).
int vqgpt_prompt_encode(const gpt_config *cfg, const vqgpt_tokenizer *tok, const char *text,
                        bool truncate, int32_t *out, bool *truncated);
// out: (text_len) the null condition (all pad), for guidance and condition dropout.
void vqgpt_prompt_null(const gpt_config *cfg, int32_t *out);

// The caption of an image: the file beside it with the extension replaced by .txt ("a.png" ->
// "a.txt"), one line (trailing whitespace dropped), checked as a prompt. Malloc'd into *text.
// Errors name the caption file: missing, not a regular file, empty, too large, not UTF-8,
// control characters.
int vqgpt_caption_read(const char *image_path, char **text);

#endif
