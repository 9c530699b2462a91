// Where the shipped models are, and how a GPT and a VQGAN are matched: the GPT's card names
// the VQGAN it was trained with (file name and codebook fingerprint).
#ifndef VQGPT_CLI_MODELS_H
#define VQGPT_CLI_MODELS_H

#include "stage1_vqgan/vqgan.h"
#include "stage2_transformer/gpt.h"
#include "tokenizer/tokenizer.h"

// The path of a shipped model (malloc'd), searched in $VQGPT_MODELS, then models/ beside or
// one and two levels above the executable (a build tree), then <prefix>/share/vqgpt/models
// for an installed executable in <prefix>/bin. NULL (and an error naming the places) when
// absent.
char *cli_shipped_model(const char *name);

// The VQGAN a GPT names in its card, looked for beside the GPT file and among the shipped
// models (malloc'd); NULL with an error if the card names none or it is not found.
char *cli_vqgan_for_gpt(const gpt *m, const char *gpt_path);

// Refuses a VQGAN whose codebook is not the one the GPT was trained with (by the card's
// fingerprint and codebook size; a GPT without a card is checked by vocabulary only).
int cli_check_vqgan(const gpt *m, const char *gpt_path, const vqgan *vq, const char *vqgan_path);

// The tokenizer a text GPT carries in its card; NULL with an error naming gpt_path if it has
// none or it does not load.
vqgpt_tokenizer *cli_gpt_tokenizer(const gpt *m, const char *gpt_path);

#endif
