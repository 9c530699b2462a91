#include "core/attention2d.h"

#include <math.h>

#include "core/blas.h"
#include "core/mathf.h"

// Row-wise softmax of rows x N scores in place, max-subtracted so exp never overflows.
static void attn2d_softmax_rows(float *s, int rows, int N) {
#pragma omp parallel for schedule(static) if ((size_t)rows * N >= 16384)
  for (int i = 0; i < rows; i++) {
    float *row = s + (size_t)i * N;
    float mx = row[0];
#pragma omp simd reduction(max : mx)
    for (int j = 1; j < N; j++) mx = row[j] > mx ? row[j] : mx;
    float sum = 0;
    for (int j = 0; j < N; j++) {
      row[j] = vqgpt_expf(row[j] - mx);
      sum += row[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < N; j++) row[j] *= inv;
  }
}

// The reference multiplies by int(c)**(-0.5) as a float32 scalar.
static float attn2d_scale(int C) { return (float)(1.0 / sqrt((double)C)); }

void vqgpt_attn2d_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                          int B, int C, int N) {
  float scale = attn2d_scale(C);
  size_t cn = (size_t)C * N, nn = (size_t)N * N;
  for (int b = 0; b < B; b++) {
    const float *qb = q + b * cn, *kb = k + b * cn, *vb = v + b * cn;  // (C, N)
    float *pb = probs + b * nn;                                        // (N, N)
    // scores (N_q, N_k) = q^T k * scale
    vqgpt_sgemm(true, false, N, N, C, scale, qb, N, kb, N, 0.0f, pb, N);
    attn2d_softmax_rows(pb, N, N);
    // out (C, N_q) = v (C, N_k) probs^T
    vqgpt_sgemm(false, true, C, N, N, 1.0f, vb, N, pb, N, 0.0f, out + b * cn, N);
  }
}

size_t vqgpt_attn2d_rows_scratch_size(int N) {
  return (size_t)(N < ATTN2D_ROWS ? N : ATTN2D_ROWS) * N;
}

void vqgpt_attn2d_forward_rows(float *out, float *scratch, const float *q, const float *k,
                               const float *v, int B, int C, int N) {
  float scale = attn2d_scale(C);
  size_t cn = (size_t)C * N;
  for (int b = 0; b < B; b++) {
    const float *qb = q + b * cn, *kb = k + b * cn, *vb = v + b * cn;  // (C, N)
    for (int i0 = 0; i0 < N; i0 += ATTN2D_ROWS) {
      int R = N - i0 < ATTN2D_ROWS ? N - i0 : ATTN2D_ROWS;
      // scores (R, N_k) = q[:, i0:i0+R]^T k * scale
      vqgpt_sgemm(true, false, R, N, C, scale, qb + i0, N, kb, N, 0.0f, scratch, N);
      attn2d_softmax_rows(scratch, R, N);
      // out[:, i0:i0+R] (C, R) = v (C, N_k) probs^T
      vqgpt_sgemm(false, true, C, R, N, 1.0f, vb, N, scratch, N, 0.0f, out + b * cn + i0, N);
    }
  }
}

size_t vqgpt_attn2d_scratch_size(int N) { return (size_t)N * N; }

void vqgpt_attn2d_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                           const float *k, const float *v, const float *probs, int B, int C, int N,
                           float *scratch) {
  float scale = attn2d_scale(C);
  size_t cn = (size_t)C * N, nn = (size_t)N * N;
  float *ds = scratch;  // (N_q, N_k): dprobs, then dscores in place
  for (int b = 0; b < B; b++) {
    const float *qb = q + b * cn, *kb = k + b * cn, *vb = v + b * cn, *dob = dout + b * cn;
    const float *pb = probs + b * nn;  // (N, N)
    // dv (C, N_k) = dout (C, N_q) probs (N_q, N_k)
    vqgpt_sgemm(false, false, C, N, N, 1.0f, dob, N, pb, N, 0.0f, dv + b * cn, N);
    // dprobs (N_q, N_k) = dout^T v
    vqgpt_sgemm(true, false, N, N, C, 1.0f, dob, N, vb, N, 0.0f, ds, N);
    // Softmax backward: dscores = p * (dp - sum_j p dp).
#pragma omp parallel for schedule(static) if (nn >= 16384)
    for (int i = 0; i < N; i++) {
      const float *p = pb + (size_t)i * N;
      float *d = ds + (size_t)i * N;
      double dot = 0;
      for (int j = 0; j < N; j++) dot += (double)p[j] * d[j];
      float fd = (float)dot;
      for (int j = 0; j < N; j++) d[j] = p[j] * (d[j] - fd);
    }
    // dq (C, N_q) = scale * k (C, N_k) dscores^T;  dk (C, N_k) = scale * q (C, N_q) dscores
    vqgpt_sgemm(false, true, C, N, N, scale, kb, N, ds, N, 0.0f, dq + b * cn, N);
    vqgpt_sgemm(false, false, C, N, N, scale, qb, N, ds, N, 0.0f, dk + b * cn, N);
  }
}
