#include "core/linear.h"

#include "core/blas.h"
#include "core/parallel.h"

// Below this many rows, one pass over the weights with every row's dot products beats sgemm,
// which packs the (large) weight matrix for a product it cannot amortise.
#define LINEAR_GEMV_MAX_ROWS 16

float linear_dot(const float *a, const float *b, int n) {
  // 16 independent partial sums let the compiler use full-width FMAs without -ffast-math.
  float acc[16] = {0};
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int u = 0; u < 16; u++) acc[u] += a[i + u] * b[i + u];
  float s = 0;
  for (int u = 0; u < 16; u++) s += acc[u];
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

static void linear_rows(float *out, const float *in, const float *weight, const float *bias,
                        int N, int C, int OC) {
#pragma omp parallel for schedule(static) if ((size_t)N * C * OC >= 8 * VQGPT_PAR_MIN)
  for (int o = 0; o < OC; o++) {
    const float *w = weight + (size_t)o * C;  // (C)
    float b = bias ? bias[o] : 0.0f;
    for (int n = 0; n < N; n++) out[(size_t)n * OC + o] = linear_dot(w, in + (size_t)n * C, C) + b;
  }
}

void linear_forward(float *out, const float *in, const float *weight, const float *bias, int N,
                    int C, int OC) {
  if (N <= LINEAR_GEMV_MAX_ROWS) {
    linear_rows(out, in, weight, bias, N, C, OC);
    return;
  }
  vqgpt_sgemm(false, true, N, OC, C, 1.0f, in, C, weight, C, 0.0f, out, OC);
  if (!bias) return;
#pragma omp parallel for schedule(static) if ((size_t)N * OC >= VQGPT_PAR_MIN)
  for (int n = 0; n < N; n++) {
    float *o = out + (size_t)n * OC;  // (OC)
    for (int j = 0; j < OC; j++) o[j] += bias[j];
  }
}

void linear_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                     const float *weight, int N, int C, int OC) {
  if (din) vqgpt_sgemm(false, false, N, C, OC, 1.0f, dout, OC, weight, C, 0.0f, din, C);
  vqgpt_sgemm(true, false, OC, C, N, 1.0f, dout, OC, in, C, 1.0f, dweight, C);
  if (!dbias) return;
  // Columns split across threads; each thread sums its columns over all rows in order.
#pragma omp parallel if ((size_t)N * OC >= VQGPT_PAR_MIN)
  {
#pragma omp for schedule(static)
    for (int j0 = 0; j0 < OC; j0 += 64) {
      int j1 = j0 + 64 < OC ? j0 + 64 : OC;
      for (int n = 0; n < N; n++) {
        const float *d = dout + (size_t)n * OC;  // (OC)
        for (int j = j0; j < j1; j++) dbias[j] += d[j];
      }
    }
  }
}
