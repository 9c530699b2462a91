// Inverted dropout with a counter-based mask: element i is dropped when
// rng_hash_uniform(seed, first + i) < p, so backward regenerates the mask instead of storing it
// and the result does not depend on the thread count. `first` places the n elements in a larger
// tensor (a data-parallel rank's rows of the batch), which then gets the masks of the whole.
#ifndef VQGPT_DROPOUT_H
#define VQGPT_DROPOUT_H

#include <stddef.h>
#include <stdint.h>

// out, in: (n); may alias. p in [0, 1); p == 0 copies.
void vqgpt_dropout_forward(float *out, const float *in, size_t n, float p, uint64_t seed,
                           size_t first);
// din (n) is overwritten (=); may alias dout.
void vqgpt_dropout_backward(float *din, const float *dout, size_t n, float p, uint64_t seed,
                            size_t first);

#endif
