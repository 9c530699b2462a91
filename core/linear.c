#include "core/linear.h"

#include <string.h>

#include "core/blas.h"
#include "core/parallel.h"
#include "core/simd.h"

float vqgpt_linear_dot(const float *a, const float *b, int n) { return linear_dot_inline(a, b, n); }

#if defined(__AVX2__) && defined(__FMA__)
// One weight row against NI inputs (NI <= 8, inputs ldx apart): out[i] = w . x_i. Called with
// a constant NI so the accumulators stay in registers. Eight inputs give eight independent FMA
// chains per loaded weight vector; a single input gets two chains. One row at a time, not
// several interleaved: a single stream per thread is what the prefetchers here sustain best
// (two interleaved rows measured at less than half the bandwidth).
static inline __attribute__((always_inline)) void dot_block(const float *w, const float *x,
                                                            size_t ldx, int NI, int C,
                                                            float out[8]) {
  __m256 acc[8], acc2 = _mm256_setzero_ps();
  for (int i = 0; i < NI; i++) acc[i] = _mm256_setzero_ps();
  int c = 0;
  if (NI == 1)
    for (; c + 16 <= C; c += 16) {
      acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(w + c), _mm256_loadu_ps(x + c), acc[0]);
      acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + c + 8), _mm256_loadu_ps(x + c + 8), acc2);
    }
  for (; c + 8 <= C; c += 8) {
    __m256 wv = _mm256_loadu_ps(w + c);
    for (int i = 0; i < NI; i++)
      acc[i] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + i * ldx + c), acc[i]);
  }
  for (int i = 0; i < NI; i++) {
    float s = hsum256(NI == 1 ? _mm256_add_ps(acc[0], acc2) : acc[i]);
    for (int k = c; k < C; k++) s += w[k] * x[i * ldx + k];
    out[i] = s;
  }
}

// out (N, OC) for small N: each thread streams its weight rows once, each row dotted with the
// inputs eight, four, then one at a time.
static void linear_rows(float *out, const float *in, const float *weight, const float *bias, int N,
                        int C, int OC) {
#pragma omp parallel for schedule(static) if ((size_t)N * C * OC >= 8 * VQGPT_PAR_MIN)
  for (int o = 0; o < OC; o++) {
    const float *w = weight + (size_t)o * C;  // (C)
    float b = bias ? bias[o] : 0.0f, s[8];
    int n = 0;
    for (; n + 8 <= N; n += 8) {
      dot_block(w, in + (size_t)n * C, C, 8, C, s);
      for (int i = 0; i < 8; i++) out[(size_t)(n + i) * OC + o] = s[i] + b;
    }
    for (; n + 4 <= N; n += 4) {
      dot_block(w, in + (size_t)n * C, C, 4, C, s);
      for (int i = 0; i < 4; i++) out[(size_t)(n + i) * OC + o] = s[i] + b;
    }
    for (; n < N; n++) {
      dot_block(w, in + (size_t)n * C, C, 1, C, s);
      out[(size_t)n * OC + o] = s[0] + b;
    }
  }
}
#else
// Portable fallback: one dot product per (input, row).
static void linear_rows(float *out, const float *in, const float *weight, const float *bias, int N,
                        int C, int OC) {
#pragma omp parallel for schedule(static) if ((size_t)N * C * OC >= 8 * VQGPT_PAR_MIN)
  for (int o = 0; o < OC; o++)
    for (int n = 0; n < N; n++)
      out[(size_t)n * OC + o] = linear_dot_inline(weight + (size_t)o * C, in + (size_t)n * C, C) +
                                (bias ? bias[o] : 0.0f);
}
#endif

void vqgpt_linear_forward(float *out, const float *in, const float *weight, const float *bias,
                          int N, int C, int OC) {
  if (N <= LINEAR_GEMV_MAX_ROWS) {
    linear_rows(out, in, weight, bias, N, C, OC);
    return;
  }
  if (!bias) {
    vqgpt_sgemm(false, true, N, OC, C, 1.0f, in, C, weight, C, 0.0f, out, OC);
    return;
  }
  // The bias first, then the product added to it: one pass over out instead of OpenBLAS's
  // zeroing pass and a bias pass.
#pragma omp parallel for schedule(static) if ((size_t)N * OC >= VQGPT_PAR_MIN)
  for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(float));
  vqgpt_sgemm(false, true, N, OC, C, 1.0f, in, C, weight, C, 1.0f, out, OC);
}

void vqgpt_linear_backward(float *din, float *dweight, float *dbias, const float *dout,
                           const float *in, const float *weight, int N, int C, int OC) {
  if (din) vqgpt_sgemm(false, false, N, C, OC, 1.0f, dout, OC, weight, C, 0.0f, din, C);
  vqgpt_sgemm(true, false, OC, C, N, 1.0f, dout, OC, in, C, 1.0f, dweight, C);
  if (!dbias) return;
#pragma omp parallel if ((size_t)N * OC >= VQGPT_PAR_MIN)
  {
    // Columns split across threads; each thread sums its columns over all rows in order.
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
