// Inverted dropout with a counter-based mask: element i is dropped when
// rng_hash_uniform(seed, i) < p, so backward regenerates the mask instead of storing it and
// the result does not depend on the thread count.
#ifndef VQGPT_DROPOUT_H
#define VQGPT_DROPOUT_H

#include <stddef.h>
#include <stdint.h>

// out, in: (n); may alias. p in [0, 1); p == 0 copies.
void vqgpt_dropout_forward(float *out, const float *in, size_t n, float p, uint64_t seed);
// din (n) is overwritten (=); may alias dout.
void vqgpt_dropout_backward(float *din, const float *dout, size_t n, float p, uint64_t seed);

#endif
