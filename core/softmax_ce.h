// Softmax cross-entropy over the last dimension, averaged over the rows whose target is a
// valid class; rows with a negative target (condition positions) are ignored, like
// F.cross_entropy's ignore_index.
#ifndef VQGPT_SOFTMAX_CE_H
#define VQGPT_SOFTMAX_CE_H

#include <stdint.h>

// logits, probs: (N, V), probs may alias logits; losses: (N) per-row loss (0 where ignored);
// targets: (N), each in [0, V) or negative to ignore. Returns the mean loss over the valid
// rows (0 if there are none) and sets *n_valid.
double vqgpt_softmax_ce_forward(float *probs, float *losses, const float *logits,
                                const int32_t *targets, int N, int V, int *n_valid);

// dlogits (N, V) is overwritten (=) with dloss * d(mean loss)/d(logits); it may alias probs.
void vqgpt_softmax_ce_backward(float *dlogits, const float *probs, const int32_t *targets, int N,
                               int V, int n_valid, float dloss);

#endif
