#include "core/linear.h"

#include <string.h>

#include "core/blas.h"
#include "core/parallel.h"

// Below this many rows, one pass over the weights with every row's dot products beats sgemm,
// which packs the (large) weight matrix for a product it cannot amortise.
#define LINEAR_GEMV_MAX_ROWS 16

float linear_dot(const float *a, const float *b, int n) { return linear_dot_inline(a, b, n); }

// GCC vector extension: 8 floats, one AVX register where available, two SSE ones elsewhere.
// Passed by pointer, not value: vector arguments would change the ABI in builds without AVX.
typedef float v8f __attribute__((vector_size(32)));
static inline void load8(v8f *v, const float *p) { memcpy(v, p, sizeof *v); }
static inline float hsum8(const v8f *v) {
  return (((*v)[0] + (*v)[4]) + ((*v)[1] + (*v)[5])) + (((*v)[2] + (*v)[6]) + ((*v)[3] + (*v)[7]));
}

// out (N, OC) for small N: each thread streams its weight rows once; a row is dotted with
// four inputs at a time so every loaded weight vector feeds four FMAs.
static void linear_rows(float *out, const float *in, const float *weight, const float *bias,
                        int N, int C, int OC) {
  int C8 = C - C % 8;
#pragma omp parallel for schedule(static) if ((size_t)N * C * OC >= 8 * VQGPT_PAR_MIN)
  for (int o = 0; o < OC; o++) {
    const float *w = weight + (size_t)o * C;  // (C)
    float b = bias ? bias[o] : 0.0f;
    int n = 0;
    for (; n + 4 <= N; n += 4) {
      const float *x0 = in + (size_t)n * C, *x1 = x0 + C, *x2 = x1 + C, *x3 = x2 + C;
      v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
      for (int c = 0; c < C8; c += 8) {
        v8f wv, y0, y1, y2, y3;
        load8(&wv, w + c);
        load8(&y0, x0 + c);
        load8(&y1, x1 + c);
        load8(&y2, x2 + c);
        load8(&y3, x3 + c);
        a0 += wv * y0;
        a1 += wv * y1;
        a2 += wv * y2;
        a3 += wv * y3;
      }
      float s0 = hsum8(&a0), s1 = hsum8(&a1), s2 = hsum8(&a2), s3 = hsum8(&a3);
      for (int c = C8; c < C; c++) {
        s0 += w[c] * x0[c];
        s1 += w[c] * x1[c];
        s2 += w[c] * x2[c];
        s3 += w[c] * x3[c];
      }
      out[(size_t)n * OC + o] = s0 + b;
      out[(size_t)(n + 1) * OC + o] = s1 + b;
      out[(size_t)(n + 2) * OC + o] = s2 + b;
      out[(size_t)(n + 3) * OC + o] = s3 + b;
    }
    for (; n < N; n++) out[(size_t)n * OC + o] = linear_dot_inline(w, in + (size_t)n * C, C) + b;
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
