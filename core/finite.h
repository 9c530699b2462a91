// Finite-value checks for weights and training state: a NaN or an infinity in a model is an
// error to report, never something to compute (and save) with.
#ifndef VQGPT_FINITE_H
#define VQGPT_FINITE_H

#include <stdbool.h>
#include <stddef.h>

// Index of the first NaN or infinity in x (n), or n when every value is finite: one
// vectorised pass over the bits, then a scan of the block that failed.
size_t vqgpt_first_nonfinite(const float *x, size_t n);
static inline bool vqgpt_all_finite(const float *x, size_t n) {
  return vqgpt_first_nonfinite(x, n) == n;
}

#endif
