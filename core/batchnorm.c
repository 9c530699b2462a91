#include "core/batchnorm.h"

#include <math.h>
#include <stddef.h>

// Per-channel sums run in double, as PyTorch's CPU kernel accumulates float in double; the
// channels are independent, so they are the parallel axis.

// Channel c's mean and sum of squared deviations over (B, HW).
static void channel_stats(const float *in, int B, int C, int HW, int c, double *mu_out,
                          double *sq_out) {
  const size_t n = (size_t)B * (size_t)HW, bstride = (size_t)C * HW;
  double sum = 0;
  for (int b = 0; b < B; b++) {
    const float *x = in + (size_t)b * bstride + (size_t)c * HW;  // (HW)
    for (int i = 0; i < HW; i++) sum += x[i];
  }
  const double mu = sum / (double)n;
  double sq = 0;  // two passes: the one-pass E[x^2] - mu^2 cancels badly for large means
  for (int b = 0; b < B; b++) {
    const float *x = in + (size_t)b * bstride + (size_t)c * HW;
    for (int i = 0; i < HW; i++) {
      const double d = x[i] - mu;
      sq += d * d;
    }
  }
  *mu_out = mu;
  *sq_out = sq;
}

static void update_running(float *running_mean, float *running_var, int c, double mu, double sq,
                           size_t n, float momentum) {
  const double unbiased = n > 1 ? sq / (double)(n - 1) : sq / (double)n;
  running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mu);
  running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
}

void batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                             float *running_var, const float *in, const float *gamma,
                             const float *beta, int B, int C, int HW, float eps, float momentum) {
  const size_t n = (size_t)B * (size_t)HW;
  const size_t cstride = (size_t)HW, bstride = (size_t)C * HW;
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; c++) {
    double mu, sq;
    channel_stats(in, B, C, HW, c, &mu, &sq);
    const double var = sq / (double)n;
    const float m = (float)mu, r = (float)(1.0 / sqrt(var + eps));
    mean[c] = m;
    rstd[c] = r;
    const float scale = gamma[c] * r, shift = beta[c] - m * scale;
    for (int b = 0; b < B; b++) {
      const float *x = in + (size_t)b * bstride + (size_t)c * cstride;
      float *y = out + (size_t)b * bstride + (size_t)c * cstride;
      for (int i = 0; i < HW; i++) y[i] = x[i] * scale + shift;
    }
    if (running_mean && running_var)
      update_running(running_mean, running_var, c, mu, sq, n, momentum);
  }
}

void batchnorm_update_running(float *running_mean, float *running_var, const float *in, int B,
                              int C, int HW, float momentum) {
  const size_t n = (size_t)B * (size_t)HW;
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; c++) {
    double mu, sq;
    channel_stats(in, B, C, HW, c, &mu, &sq);
    update_running(running_mean, running_var, c, mu, sq, n, momentum);
  }
}

void batchnorm_forward_eval(float *out, const float *in, const float *gamma, const float *beta,
                            const float *running_mean, const float *running_var, int B, int C,
                            int HW, float eps) {
  const size_t bstride = (size_t)C * HW;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++) {
      const float r = 1.0f / sqrtf(running_var[c] + eps);
      const float scale = gamma[c] * r, shift = beta[c] - running_mean[c] * scale;
      const float *x = in + (size_t)b * bstride + (size_t)c * HW;  // (HW)
      float *y = out + (size_t)b * bstride + (size_t)c * HW;
      for (int i = 0; i < HW; i++) y[i] = x[i] * scale + shift;
    }
}

void batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                        const float *in, const float *mean, const float *rstd, const float *gamma,
                        int B, int C, int HW) {
  const size_t n = (size_t)B * (size_t)HW;
  const size_t bstride = (size_t)C * HW;
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; c++) {
    const float m = mean[c], r = rstd[c];
    double sum_dy = 0, sum_dy_xc = 0;  // sum(dy), sum(dy * (x - mean))
    for (int b = 0; b < B; b++) {
      const float *x = in + (size_t)b * bstride + (size_t)c * HW;  // (HW)
      const float *dy = dout + (size_t)b * bstride + (size_t)c * HW;
      for (int i = 0; i < HW; i++) {
        sum_dy += dy[i];
        sum_dy_xc += (double)dy[i] * (x[i] - m);
      }
    }
    if (dgamma) dgamma[c] += (float)(sum_dy_xc * r);
    if (dbeta) dbeta[c] += (float)sum_dy;
    if (!din) continue;
    // din = gamma * rstd * (dy - mean(dy) - xhat * mean(dy * xhat))
    const float mean_dy = (float)(sum_dy / (double)n);
    const float k = (float)(sum_dy_xc / (double)n) * r * r;
    const float g = gamma[c] * r;
    for (int b = 0; b < B; b++) {
      const float *x = in + (size_t)b * bstride + (size_t)c * HW;
      const float *dy = dout + (size_t)b * bstride + (size_t)c * HW;
      float *dx = din + (size_t)b * bstride + (size_t)c * HW;
      for (int i = 0; i < HW; i++) dx[i] = g * (dy[i] - mean_dy - (x[i] - m) * k);
    }
  }
}
