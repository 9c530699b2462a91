// Next-token selection from a row of logits, as composable steps: restrict to a token range,
// temperature, top-k (the reference's top_k_logits: ties with the k-th value are kept),
// top-p (nucleus), then either argmax (greedy) or a draw from the softmax. Guidance methods
// that combine several logit rows run before these steps.
#ifndef VQGPT_LOGITS_H
#define VQGPT_LOGITS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
  float temperature;  // > 0
  int top_k;          // 0 = keep all, else 1..vocab
  float top_p;        // (0, 1]; 1 = keep all
  bool greedy;        // argmax instead of a draw (temperature/top-k/top-p then change nothing)
} sampling_params;

void vqgpt_sampling_params_default(sampling_params *sp);
// Range checks against a vocabulary; errors name the offending option.
int vqgpt_sampling_params_check(const sampling_params *sp, int vocab);

typedef struct {
  float value;
  int32_t index;
} logits_pair;

// Working memory for the steps below on rows of V logits.
typedef struct {
  int V;
  float *values;       // (V)
  logits_pair *pairs;  // (V)
} logits_scratch;
int vqgpt_logits_scratch_init(logits_scratch *s, int V);
void vqgpt_logits_scratch_free(logits_scratch *s);

// Each step edits logits (V) in place; removed tokens become -inf.
void vqgpt_logits_limit(float *logits, int V, int n_allowed);  // keep tokens 0..n_allowed-1
// Divides by the temperature; when that would overflow a finite logit (a temperature near 0),
// applies the limit T -> 0 instead: the largest logit(s) become 0, all others -inf (greedy).
void vqgpt_logits_temperature(float *logits, int V, float temperature);
void vqgpt_logits_top_k(float *logits, int V, int k, logits_scratch *s);
void vqgpt_logits_top_p(float *logits, int V, float p, logits_scratch *s);
// temperature, top-k, top-p in that order (the reference divides by the temperature first).
void vqgpt_logits_process(float *logits, int V, const sampling_params *sp, logits_scratch *s);

// The first index of the largest logit.
int32_t vqgpt_logits_argmax(const float *logits, int V);
// A draw from softmax(logits) using one uniform from rng.
int32_t vqgpt_logits_sample(const float *logits, int V, uint64_t *rng, logits_scratch *s);
// Processes and selects: argmax when sp->greedy, else a draw.
int32_t vqgpt_logits_select(float *logits, int V, const sampling_params *sp, uint64_t *rng,
                            logits_scratch *s);

#endif
