// Fully connected layer in the PyTorch nn.Linear layout: weight (OC, C), bias (OC) or NULL.
//   out[n, o] = sum_c in[n, c] * weight[o, c] + bias[o]
#ifndef VQGPT_LINEAR_H
#define VQGPT_LINEAR_H

#include <stddef.h>

// Below this many rows, one pass over the weights with every row's dot products beats sgemm,
// which packs the (large) weight matrix for a product it cannot amortise.
#define LINEAR_GEMV_MAX_ROWS 16

// out: (N, OC), in: (N, C). Large N goes to sgemm; small N (incremental decoding) to a
// row-parallel kernel that reads each weight row once for all N inputs.
void vqgpt_linear_forward(float *out, const float *in, const float *weight, const float *bias,
                          int N, int C, int OC);

// din (N, C) is overwritten (=) and may be NULL; dweight (OC, C) and dbias (OC, may be NULL)
// accumulate (+=).
void vqgpt_linear_backward(float *din, float *dweight, float *dbias, const float *dout,
                           const float *in, const float *weight, int N, int C, int OC);

// Dot product with a fixed summation order (independent of thread count). 16 independent
// partial sums let the compiler use full-width FMAs without -ffast-math.
static inline float linear_dot_inline(const float *a, const float *b, int n) {
  float acc[16] = {0};
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int u = 0; u < 16; u++) acc[u] += a[i + u] * b[i + u];
  float s = 0;
  for (int u = 0; u < 16; u++) s += acc[u];
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}
float vqgpt_linear_dot(const float *a, const float *b, int n);

#endif
