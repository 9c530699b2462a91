// Raster-order sampling of code grids with the GPT: every sequence starts with its condition
// token, then each new code costs one incremental forward through the KV cache. The B
// sequences advance in lockstep so each weight matrix is read once per step for all of them.
#ifndef VQGPT_SAMPLER_H
#define VQGPT_SAMPLER_H

#include <stdint.h>

#include "sampling/logits.h"
#include "stage2_transformer/gpt.h"

// Called after each sampled position (done of total), e.g. for progress output.
typedef void (*sampler_progress_fn)(void *ctx, int done, int total);

// cond: (B) condition tokens. out: (B, n_tokens) codes, each in [0, n_allowed). Needs
// GPT_N_COND + n_tokens - 1 <= block_size (no sliding window). Draws use *rng in order:
// position by position, sequence by sequence, so a seed reproduces the batch.
int sampler_raster(const gpt *m, const int32_t *cond, int B, int n_tokens, int n_allowed,
                   const sampling_params *sp, uint64_t *rng, int32_t *out,
                   sampler_progress_fn progress, void *ctx);

#endif
