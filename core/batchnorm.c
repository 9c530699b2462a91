#include "core/batchnorm.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "core/dist.h"
#include "core/error.h"

// Per-channel sums run in double, as PyTorch's CPU kernel accumulates float in double; the
// channels are independent, so they are the parallel axis.

// Channel c's sum over (B, HW).
static double channel_sum(const float *in, int B, int C, int HW, int c) {
  const size_t bstride = (size_t)C * HW;
  double sum = 0;
  for (int b = 0; b < B; b++) {
    const float *x = in + (size_t)b * bstride + (size_t)c * HW;  // (HW)
    for (int i = 0; i < HW; i++) sum += x[i];
  }
  return sum;
}

// Channel c's sum of squared deviations from mu over (B, HW).
static double channel_sq(const float *in, int B, int C, int HW, int c, double mu) {
  const size_t bstride = (size_t)C * HW;
  double sq = 0;  // two passes: the one-pass E[x^2] - mu^2 cancels badly for large means
  for (int b = 0; b < B; b++) {
    const float *x = in + (size_t)b * bstride + (size_t)c * HW;
    for (int i = 0; i < HW; i++) {
      const double d = x[i] - mu;
      sq += d * d;
    }
  }
  return sq;
}

// Channel c's mean and sum of squared deviations over (B, HW).
static void channel_stats(const float *in, int B, int C, int HW, int c, double *mu_out,
                          double *sq_out) {
  const size_t n = (size_t)B * (size_t)HW;
  const double mu = channel_sum(in, B, C, HW, c) / (double)n;
  *mu_out = mu;
  *sq_out = channel_sq(in, B, C, HW, c, mu);
}

static void update_running(float *running_mean, float *running_var, int c, double mu, double sq,
                           size_t n, float momentum) {
  const double unbiased = n > 1 ? sq / (double)(n - 1) : sq / (double)n;
  running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mu);
  running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
}

void vqgpt_batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                                   float *running_var, const float *in, const float *gamma,
                                   const float *beta, int B, int C, int HW, float eps,
                                   float momentum) {
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

void vqgpt_batchnorm_update_running(float *running_mean, float *running_var, const float *in, int B,
                                    int C, int HW, float momentum) {
  const size_t n = (size_t)B * (size_t)HW;
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; c++) {
    double mu, sq;
    channel_stats(in, B, C, HW, c, &mu, &sq);
    update_running(running_mean, running_var, c, mu, sq, n, momentum);
  }
}

void vqgpt_batchnorm_forward_eval(float *out, const float *in, const float *gamma,
                                  const float *beta, const float *running_mean,
                                  const float *running_var, int B, int C, int HW, float eps) {
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

void vqgpt_batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                              const float *in, const float *mean, const float *rstd,
                              const float *gamma, int B, int C, int HW) {
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

// ---------------------------------------------------------------------------------------------
// Synchronised across the ranks of a data-parallel job: the same sums, each completed by an
// allreduce over the ranks before it is used.

// mu, sq (C): every channel's mean and sum of squared deviations over all ranks' (B, HW).
static int global_stats(const float *in, int B, int C, int HW, double *mu, double *sq) {
  const size_t n = (size_t)B * (size_t)HW * (size_t)vqgpt_dist_size();
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; c++) mu[c] = channel_sum(in, B, C, HW, c);
  vqgpt_dist_allreduce_sum_f64(mu, (size_t)C);
  for (int c = 0; c < C; c++) mu[c] /= (double)n;
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; c++) sq[c] = channel_sq(in, B, C, HW, c, mu[c]);
  vqgpt_dist_allreduce_sum_f64(sq, (size_t)C);
  return 0;
}

static double *stats_buffer(int C) {
  double *s = malloc(2 * (size_t)(C > 0 ? C : 1) * sizeof *s);
  if (!s) vqgpt_error("batchnorm: out of memory");
  return s;
}

int vqgpt_batchnorm_forward_train_dist(float *out, float *mean, float *rstd, float *running_mean,
                                       float *running_var, const float *in, const float *gamma,
                                       const float *beta, int B, int C, int HW, float eps,
                                       float momentum) {
  double *mu = stats_buffer(C), *sq = mu ? mu + C : NULL;
  if (!mu) return -1;
  global_stats(in, B, C, HW, mu, sq);
  const size_t n = (size_t)B * (size_t)HW * (size_t)vqgpt_dist_size(), bstride = (size_t)C * HW;
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; c++) {
    const double var = sq[c] / (double)n;
    const float m = (float)mu[c], r = (float)(1.0 / sqrt(var + eps));
    mean[c] = m;
    rstd[c] = r;
    const float scale = gamma[c] * r, shift = beta[c] - m * scale;
    for (int b = 0; b < B; b++) {
      const float *x = in + (size_t)b * bstride + (size_t)c * HW;
      float *y = out + (size_t)b * bstride + (size_t)c * HW;
      for (int i = 0; i < HW; i++) y[i] = x[i] * scale + shift;
    }
    if (running_mean && running_var)
      update_running(running_mean, running_var, c, mu[c], sq[c], n, momentum);
  }
  free(mu);
  return 0;
}

int vqgpt_batchnorm_update_running_dist(float *running_mean, float *running_var, const float *in,
                                        int B, int C, int HW, float momentum) {
  double *mu = stats_buffer(C), *sq = mu ? mu + C : NULL;
  if (!mu) return -1;
  global_stats(in, B, C, HW, mu, sq);
  const size_t n = (size_t)B * (size_t)HW * (size_t)vqgpt_dist_size();
  for (int c = 0; c < C; c++)
    update_running(running_mean, running_var, c, mu[c], sq[c], n, momentum);
  free(mu);
  return 0;
}

int vqgpt_batchnorm_backward_dist(float *din, float *dgamma, float *dbeta, const float *dout,
                                  const float *in, const float *mean, const float *rstd,
                                  const float *gamma, int B, int C, int HW) {
  double *sum_dy = stats_buffer(C), *sum_dy_xc = sum_dy ? sum_dy + C : NULL;
  if (!sum_dy) return -1;
  const size_t bstride = (size_t)C * HW;
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; c++) {
    const float m = mean[c];
    double a = 0, b2 = 0;
    for (int b = 0; b < B; b++) {
      const float *x = in + (size_t)b * bstride + (size_t)c * HW;  // (HW)
      const float *dy = dout + (size_t)b * bstride + (size_t)c * HW;
      for (int i = 0; i < HW; i++) {
        a += dy[i];
        b2 += (double)dy[i] * (x[i] - m);
      }
    }
    // This rank's share of the parameter gradients: the trainer sums them over the ranks.
    if (dgamma) dgamma[c] += (float)(b2 * rstd[c]);
    if (dbeta) dbeta[c] += (float)a;
    sum_dy[c] = a;
    sum_dy_xc[c] = b2;
  }
  if (din) {
    vqgpt_dist_allreduce_sum_f64(sum_dy, 2 * (size_t)C);  // sum_dy_xc follows sum_dy
    const size_t n = (size_t)B * (size_t)HW * (size_t)vqgpt_dist_size();
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
      const float m = mean[c], r = rstd[c];
      const float mean_dy = (float)(sum_dy[c] / (double)n);
      const float k = (float)(sum_dy_xc[c] / (double)n) * r * r;
      const float g = gamma[c] * r;
      for (int b = 0; b < B; b++) {
        const float *x = in + (size_t)b * bstride + (size_t)c * HW;
        const float *dy = dout + (size_t)b * bstride + (size_t)c * HW;
        float *dx = din + (size_t)b * bstride + (size_t)c * HW;
        for (int i = 0; i < HW; i++) dx[i] = g * (dy[i] - mean_dy - (x[i] - m) * k);
      }
    }
  }
  free(sum_dy);
  return 0;
}
