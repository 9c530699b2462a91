#include "core/layernorm.h"

#include <math.h>
#include <stddef.h>

#include "core/parallel.h"

void vqgpt_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                             const float *weight, const float *bias, int N, int C, float eps) {
#pragma omp parallel for schedule(static) if ((size_t)N * C >= VQGPT_PAR_MIN)
  for (int n = 0; n < N; n++) {
    const float *x = in + (size_t)n * C;  // (C)
    float *y = out + (size_t)n * C;       // (C)
    double s = 0;
    for (int c = 0; c < C; c++) s += x[c];
    float m = (float)(s / C);
    double v = 0;
    for (int c = 0; c < C; c++) {
      double d = x[c] - m;
      v += d * d;
    }
    float r = (float)(1.0 / sqrt(v / C + eps));
    for (int c = 0; c < C; c++) y[c] = (x[c] - m) * r * weight[c] + bias[c];
    if (mean) mean[n] = m;
    if (rstd) rstd[n] = r;
  }
}

void vqgpt_layernorm_backward(float *din, float *dweight, float *dbias, const float *dout,
                              const float *in, const float *mean, const float *rstd,
                              const float *weight, int N, int C) {
  // Rows in parallel for the input gradient; then columns in parallel for the parameter
  // gradients, so that every sum has one fixed order whatever the thread count.
#pragma omp parallel if ((size_t)N * C >= VQGPT_PAR_MIN)
  {
#pragma omp for schedule(static)
    for (int n = 0; n < N; n++) {
      const float *x = in + (size_t)n * C;     // (C)
      const float *dy = dout + (size_t)n * C;  // (C)
      float *dx = din + (size_t)n * C;         // (C)
      float m = mean[n], r = rstd[n];
      double sd = 0, sdn = 0;
      for (int c = 0; c < C; c++) {
        float dn = dy[c] * weight[c];
        sd += dn;
        sdn += dn * ((x[c] - m) * r);
      }
      float md = (float)(sd / C), mdn = (float)(sdn / C);
      for (int c = 0; c < C; c++) {
        float norm = (x[c] - m) * r;
        dx[c] += r * (dy[c] * weight[c] - md - norm * mdn);
      }
    }
#pragma omp for schedule(static)
    for (int c0 = 0; c0 < C; c0 += 32) {
      int c1 = c0 + 32 < C ? c0 + 32 : C;
      for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        const float *dy = dout + (size_t)n * C;
        float m = mean[n], r = rstd[n];
        for (int c = c0; c < c1; c++) {
          dweight[c] += (x[c] - m) * r * dy[c];
          dbias[c] += dy[c];
        }
      }
    }
  }
}
