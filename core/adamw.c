#include "core/adamw.h"

#include <math.h>
#include <stdlib.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "core/parallel.h"

#define NORM_BLOCK 65536

// One contiguous range of the update. libm's sqrtf may set errno, which keeps the compiler from
// vectorizing the loop under the project's flags; the AVX square root is the same correctly
// rounded IEEE operation.
static bool adamw_range(float *param, const float *grad, float *m, float *v, size_t i0, size_t i1,
                        float beta1, float beta2, float eps, float decay, float step_size,
                        float bc2_sqrt) {
  size_t i = i0;
  // x * 0 is 0 for finite x and NaN for an infinity or a NaN: one extra multiply-add per value.
  float acc = 0.0f;
#if defined(__AVX__) && defined(__FMA__)
  __m256 vacc = _mm256_setzero_ps();
  const __m256 b2 = _mm256_set1_ps(beta2);
  const __m256 ob1 = _mm256_set1_ps(1.0f - beta1), ob2 = _mm256_set1_ps(1.0f - beta2);
  const __m256 ve = _mm256_set1_ps(eps), vd = _mm256_set1_ps(decay);
  const __m256 vs = _mm256_set1_ps(step_size), vb = _mm256_set1_ps(bc2_sqrt);
  for (; i + 8 <= i1; i += 8) {
    __m256 g = _mm256_loadu_ps(grad + i), mo = _mm256_loadu_ps(m + i), vo = _mm256_loadu_ps(v + i);
    // Same operation order as the scalar loop below (no contraction into FMAs).
    __m256 mi = _mm256_add_ps(mo, _mm256_mul_ps(ob1, _mm256_sub_ps(g, mo)));
    __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, vo), _mm256_mul_ps(_mm256_mul_ps(ob2, g), g));
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), vb), ve);
    __m256 p = _mm256_loadu_ps(param + i);
    p = _mm256_sub_ps(_mm256_mul_ps(p, vd), _mm256_div_ps(_mm256_mul_ps(vs, mi), denom));
    _mm256_storeu_ps(param + i, p);
    vacc = _mm256_add_ps(vacc, _mm256_mul_ps(p, _mm256_setzero_ps()));
  }
  float lanes[8];
  _mm256_storeu_ps(lanes, vacc);
  for (int k = 0; k < 8; k++) acc += lanes[k];
#endif
  for (; i < i1; i++) {
    float g = grad[i];
    float mi = m[i] + (1.0f - beta1) * (g - m[i]);
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    param[i] = param[i] * decay - step_size * mi / denom;
    acc += param[i] * 0.0f;
  }
  return acc == 0.0f;
}

bool vqgpt_adamw_update(float *param, const float *grad, float *m, float *v, size_t n, float lr,
                        float beta1, float beta2, float eps, float weight_decay, long step) {
  float bc1 = 1.0f - powf(beta1, (float)step);
  float bc2_sqrt = sqrtf(1.0f - powf(beta2, (float)step));
  float step_size = lr / bc1;
  float decay = 1.0f - lr * weight_decay;
  size_t chunk = 16384, nc = (n + chunk - 1) / chunk;
  int bad = 0;
#pragma omp parallel for schedule(static) if (n >= VQGPT_PAR_MIN) reduction(| : bad)
  for (size_t c = 0; c < nc; c++) {
    size_t i0 = c * chunk, i1 = i0 + chunk < n ? i0 + chunk : n;
    bad |= !adamw_range(param, grad, m, v, i0, i1, beta1, beta2, eps, decay, step_size, bc2_sqrt);
  }
  return !bad;
}

double vqgpt_adamw_global_norm(const float *grad, size_t n) {
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

float vqgpt_adamw_clip(float *grad, size_t n, double norm, double max_norm) {
  if (!(max_norm > 0) || !(norm > max_norm)) return 1.0f;
  float f = (float)(max_norm / (norm + 1e-6));
#pragma omp parallel for schedule(static) if (n >= VQGPT_PAR_MIN)
  for (size_t i = 0; i < n; i++) grad[i] *= f;
  return f;
}
