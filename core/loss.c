#include "core/loss.h"

#include <math.h>

float vqgpt_loss_l1_mean(float *dx, const float *x, const float *y, size_t n) {
  double sum = 0;
  const float g = 1.0f / (float)n;
  for (size_t i = 0; i < n; i++) {
    const float d = x[i] - y[i];
    sum += fabsf(d);
    if (dx) dx[i] = d > 0 ? g : d < 0 ? -g : 0.0f;
  }
  return (float)(sum / (double)n);
}

// relu(1 - sign * v) summed; d/dv written as -sign * g where the relu is active. The
// boundary (1 - sign * v == 0) gets 0, as torch's relu backward.
static double hinge_term(float *dv, const float *v, size_t n, float sign, float g) {
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    const float t = 1.0f - sign * v[i];
    if (t > 0) sum += t;
    if (dv) dv[i] = t > 0 ? -sign * g : 0.0f;
  }
  return sum;
}

float vqgpt_loss_d_hinge(float *dreal, float *dfake, const float *real, size_t n_real,
                         const float *fake, size_t n_fake) {
  const double r = hinge_term(dreal, real, n_real, 1.0f, 0.5f / (float)n_real);
  const double f = hinge_term(dfake, fake, n_fake, -1.0f, 0.5f / (float)n_fake);
  return (float)(0.5 * (r / (double)n_real + f / (double)n_fake));
}

// softplus(sign * v) summed, without overflow for large |v|; d/dv = sign * sigmoid(sign * v) * g.
static double softplus_term(float *dv, const float *v, size_t n, float sign, double g) {
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    const double t = (double)sign * v[i];
    const double e = exp(-fabs(t));
    sum += (t > 0 ? t : 0.0) + log1p(e);
    const double sig = t >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    if (dv) dv[i] = (float)(sign * sig * g);
  }
  return sum;
}

float vqgpt_loss_d_vanilla(float *dreal, float *dfake, const float *real, size_t n_real,
                           const float *fake, size_t n_fake) {
  const double r = softplus_term(dreal, real, n_real, -1.0f, 0.5 / (double)n_real);
  const double f = softplus_term(dfake, fake, n_fake, 1.0f, 0.5 / (double)n_fake);
  return (float)(0.5 * (r / (double)n_real + f / (double)n_fake));
}

float vqgpt_loss_g(float *dfake, const float *fake, size_t n) {
  double sum = 0;
  const float g = -1.0f / (float)n;
  for (size_t i = 0; i < n; i++) {
    sum += fake[i];
    if (dfake) dfake[i] = g;
  }
  return (float)(-sum / (double)n);
}
