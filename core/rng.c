#include "core/rng.h"

#include <math.h>

static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t vqgpt_rng_next(uint64_t *state) {
  *state += 0x9E3779B97F4A7C15ULL;
  return mix64(*state);
}

float vqgpt_rng_uniform(uint64_t *state) {
  return (float)(vqgpt_rng_next(state) >> 40) * (1.0f / 16777216.0f);
}

double vqgpt_rng_uniform_double(uint64_t *state) {
  return (double)(vqgpt_rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

float vqgpt_rng_normal(uint64_t *state) {
  // 1 - u lies in (0, 1], so the logarithm is finite.
  double u1 = 1.0 - vqgpt_rng_uniform_double(state);
  double u2 = vqgpt_rng_uniform_double(state);
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t vqgpt_rng_below(uint64_t *state, uint64_t n) {
  // Rejects the top partial copy of [0, n) so every residue is equally likely.
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r;
  do r = vqgpt_rng_next(state);
  while (r >= limit);
  return r % n;
}

void vqgpt_rng_permutation(uint64_t *state, int32_t *perm, size_t n) {
  for (size_t i = 0; i < n; i++) perm[i] = (int32_t)i;
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)vqgpt_rng_below(state, i);
    int32_t t = perm[i - 1];
    perm[i - 1] = perm[j];
    perm[j] = t;
  }
}

void vqgpt_rng_fill_normal(uint64_t *state, float *x, size_t n, float mean, float std) {
  for (size_t i = 0; i < n; i++) x[i] = mean + std * vqgpt_rng_normal(state);
}

uint64_t vqgpt_rng_hash(uint64_t seed, uint64_t counter) {
  return mix64(mix64(seed + 0x9E3779B97F4A7C15ULL) ^ (counter * 0xD1B54A32D192ED03ULL));
}
