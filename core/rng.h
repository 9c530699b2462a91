// Explicit-state random numbers: every consumer owns a uint64_t state and passes it in, so a
// run is reproducible from its seed and a checkpoint can store the state as one integer.
// The generator is SplitMix64 (any state, including 0, is valid). vqgpt_rng_hash gives
// counter-based numbers for parallel loops (dropout masks) whose result must not depend on thread
// count.
#ifndef VQGPT_RNG_H
#define VQGPT_RNG_H

#include <stddef.h>
#include <stdint.h>

uint64_t vqgpt_rng_next(uint64_t *state);
// Uniform in [0, 1) with 24 random bits (exactly representable as float).
float vqgpt_rng_uniform(uint64_t *state);
// Uniform in [0, 1) with 53 random bits.
double vqgpt_rng_uniform_double(uint64_t *state);
// Standard normal (Box-Muller, one value per call; two uniforms consumed).
float vqgpt_rng_normal(uint64_t *state);
// Uniform integer in [0, n), n > 0, without modulo bias.
uint64_t vqgpt_rng_below(uint64_t *state, uint64_t n);
// perm: (n) a uniformly random permutation of 0..n-1 (Fisher-Yates).
void vqgpt_rng_permutation(uint64_t *state, int32_t *perm, size_t n);
// Fills x (n) with normal(mean, std) values.
void vqgpt_rng_fill_normal(uint64_t *state, float *x, size_t n, float mean, float std);

// A stateless mix of (seed, counter) into 64 random bits, and its [0, 1) float form.
uint64_t vqgpt_rng_hash(uint64_t seed, uint64_t counter);
static inline float rng_hash_uniform(uint64_t seed, uint64_t counter) {
  return (float)(vqgpt_rng_hash(seed, counter) >> 40) * (1.0f / 16777216.0f);
}

#endif
