#include "sampling/sampler.h"

#include <stdlib.h>

#include "core/error.h"

int sampler_raster(const gpt *m, const int32_t *cond, int B, int n_tokens, int n_allowed,
                   const sampling_params *sp, uint64_t *rng, int32_t *out,
                   sampler_progress_fn progress, void *ctx) {
  const gpt_config *c = &m->cfg;
  int V = c->vocab_size;
  if (B < 1 || n_tokens < 1) return vqgpt_error("nothing to sample (%d x %d)", B, n_tokens);
  if (GPT_N_COND + n_tokens - 1 > c->block_size)
    return vqgpt_error("%d codes need %d positions but the GPT's block_size is %d "
                       "(sliding-window sampling is not implemented)",
                       n_tokens, GPT_N_COND + n_tokens - 1, c->block_size);
  if (n_allowed < 1 || n_allowed > V)
    return vqgpt_error("allowed token range %d not in [1, %d]", n_allowed, V);
  if (sampling_params_check(sp, V)) return -1;
  for (int b = 0; b < B; b++)
    if (cond[b] < 0 || cond[b] >= V) return vqgpt_error("condition token %d not in [0, %d)", cond[b], V);

  gpt_kv kv;
  logits_scratch s = {0};
  float *logits = malloc((size_t)B * V * sizeof(float));  // (B, V)
  int32_t *tokens = malloc((size_t)B * sizeof(int32_t));  // (B)
  int rc = -1;
  if (gpt_kv_init(&kv, m, B)) {
    free(logits);
    free(tokens);
    return -1;
  }
  if (!logits || !tokens) {
    vqgpt_error("out of memory for sampling");
    goto done;
  }
  if (logits_scratch_init(&s, V)) goto done;
  for (int b = 0; b < B; b++) tokens[b] = cond[b];
  for (int i = 0; i < n_tokens; i++) {
    if (gpt_step(m, &kv, tokens, logits)) goto done;
    for (int b = 0; b < B; b++) {
      float *row = logits + (size_t)b * V;
      logits_limit(row, V, n_allowed);
      tokens[b] = logits_select(row, V, sp, rng, &s);
      out[(size_t)b * n_tokens + i] = tokens[b];
    }
    if (progress) progress(ctx, i + 1, n_tokens);
  }
  rc = 0;
done:
  gpt_kv_free(&kv);
  logits_scratch_free(&s);
  free(logits);
  free(tokens);
  return rc;
}
