#include "core/finite.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define FINITE_BLOCK 4096

// On the bit patterns: an all-ones exponent is an infinity or a NaN. Integer OR reductions
// vectorise under IEEE semantics, float sums would not.
static bool block_finite(const float *x, size_t n) {
  uint32_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t bits;
    memcpy(&bits, &x[i], sizeof bits);
    bad |= (bits & 0x7F800000u) == 0x7F800000u;
  }
  return !bad;
}

size_t vqgpt_first_nonfinite(const float *x, size_t n) {
  for (size_t b = 0; b < n; b += FINITE_BLOCK) {
    size_t len = n - b < FINITE_BLOCK ? n - b : FINITE_BLOCK;
    if (block_finite(x + b, len)) continue;
    for (size_t i = b; i < b + len; i++)
      if (!isfinite(x[i])) return i;
  }
  return n;
}
