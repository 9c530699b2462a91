#include "core/adamw.h"

#include <math.h>

#include "core/parallel.h"
#include <stdlib.h>

#define NORM_BLOCK 65536

void adamw_update(float *param, const float *grad, float *m, float *v, size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, long step) {
  float bc1 = 1.0f - powf(beta1, (float)step);
  float bc2_sqrt = sqrtf(1.0f - powf(beta2, (float)step));
  float step_size = lr / bc1;
  float decay = 1.0f - lr * weight_decay;
#pragma omp parallel for schedule(static) if (n >= VQGPT_PAR_MIN)
  for (size_t i = 0; i < n; i++) {
    float g = grad[i];
    float mi = m[i] + (1.0f - beta1) * (g - m[i]);
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    param[i] = param[i] * decay - step_size * mi / denom;
  }
}

double adamw_global_norm(const float *grad, size_t n) {
  size_t nb = (n + NORM_BLOCK - 1) / NORM_BLOCK;
  double total = 0;
  // Per-block partial sums in a fixed order; a stack array avoids an allocation that could fail.
  for (size_t b0 = 0; b0 < nb; b0 += 256) {
    double part[256];
    size_t cnt = nb - b0 < 256 ? nb - b0 : 256;
#pragma omp parallel for schedule(static) if (cnt > 1)
    for (size_t k = 0; k < cnt; k++) {
      size_t i0 = (b0 + k) * NORM_BLOCK, i1 = i0 + NORM_BLOCK < n ? i0 + NORM_BLOCK : n;
      double s = 0;
      for (size_t i = i0; i < i1; i++) s += (double)grad[i] * grad[i];
      part[k] = s;
    }
    for (size_t k = 0; k < cnt; k++) total += part[k];
  }
  return sqrt(total);
}

float adamw_clip(float *grad, size_t n, double norm, double max_norm) {
  if (!(max_norm > 0) || !(norm > max_norm)) return 1.0f;
  float f = (float)(max_norm / (norm + 1e-6));
#pragma omp parallel for schedule(static) if (n >= VQGPT_PAR_MIN)
  for (size_t i = 0; i < n; i++) grad[i] *= f;
  return f;
}
