#include "core/gelu.h"

#include <math.h>

#include "core/parallel.h"


void vqgpt_gelu_forward(float *out, const float *in, size_t n) {
#pragma omp parallel for schedule(static) if (n >= VQGPT_PAR_MIN / 4)
  for (size_t i = 0; i < n; i++) {
    float x = in[i];
    out[i] = 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
  }
}

void vqgpt_gelu_backward(float *din, const float *dout, const float *in, size_t n) {
  const float inv_sqrt_2pi = 0.3989422804014327f;
#pragma omp parallel for schedule(static) if (n >= VQGPT_PAR_MIN / 4)
  for (size_t i = 0; i < n; i++) {
    float x = in[i];
    float cdf = 0.5f * (1.0f + erff(x * (float)M_SQRT1_2));
    float pdf = inv_sqrt_2pi * expf(-0.5f * x * x);
    din[i] = dout[i] * (cdf + x * pdf);
  }
}
