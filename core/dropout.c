#include "core/dropout.h"

#include <string.h>

#include "core/parallel.h"

#include "core/rng.h"

void vqgpt_dropout_forward(float *out, const float *in, size_t n, float p, uint64_t seed,
                           size_t first) {
  if (p <= 0.0f) {
    if (out != in) memmove(out, in, n * sizeof(float));
    return;
  }
  float keep = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (n >= VQGPT_PAR_MIN)
  for (size_t i = 0; i < n; i++)
    out[i] = rng_hash_uniform(seed, first + i) < p ? 0.0f : in[i] * keep;
}

void vqgpt_dropout_backward(float *din, const float *dout, size_t n, float p, uint64_t seed,
                            size_t first) {
  vqgpt_dropout_forward(din, dout, n, p, seed, first);
}
