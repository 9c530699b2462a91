#include "core/causal_attention.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "core/blas.h"
#include "core/linear.h"
#include "core/parallel.h"
#include "core/simd.h"
#include "core/rng.h"

// Softmax of s[0..n) in place, with the max subtracted first as torch.softmax does.
static void softmax_inplace(float *s, int n) {
  float mx = -INFINITY;
  for (int j = 0; j < n; j++) mx = s[j] > mx ? s[j] : mx;
  float sum = 0;
  for (int j = 0; j < n; j++) {
    s[j] = expf(s[j] - mx);
    sum += s[j];
  }
  float inv = 1.0f / sum;
  for (int j = 0; j < n; j++) s[j] *= inv;
}

// The dropout multiplier of att[b,h,i,j]: 0 or 1/(1-pdrop).
static inline float drop_scale(uint64_t seed, size_t index, float pdrop) {
  return rng_hash_uniform(seed, index) < pdrop ? 0.0f : 1.0f / (1.0f - pdrop);
}

// The dropout counter of att[b, h, 0, 0]: its index in the whole batch's (B, H, T, T) layout,
// where this call's row b is row b0 + b.
static inline size_t drop_base(int b0, int b, int h, int H, size_t TT) {
  return ((size_t)(b0 + b) * H + h) * TT;
}

// One (batch, head) pair: S = scale Q K^T, the causal softmax, (dropout), Y = P V.
static void attend_pair(float *out, float *att, const float *qkv, int b, int h, int T, int C, int H,
                        float pdrop, uint64_t seed, int b0, float *scratch) {
  int hs = C / H, C3 = 3 * C;
  size_t bh = (size_t)b * H + h, TT = (size_t)T * T, base = drop_base(b0, b, h, H, TT);
  const float *q = qkv + (size_t)b * T * C3 + (size_t)h * hs;  // (T, hs), row stride 3C
  const float *k = q + C, *v = q + 2 * C;
  float *a = att + bh * TT;  // (T, T); above the diagonal overwritten by the softmax
  vqgpt_sgemm(false, true, T, T, hs, 1.0f / sqrtf((float)hs), q, C3, k, C3, 0.0f, a, T);
  for (int i = 0; i < T; i++) {
    softmax_inplace(a + (size_t)i * T, i + 1);
    for (int j = i + 1; j < T; j++) a[(size_t)i * T + j] = 0.0f;
  }
  const float *P = a;
  if (pdrop > 0.0f) {
    float *d = scratch + bh * TT;
    for (size_t k2 = 0; k2 < TT; k2++)
      d[k2] = a[k2] == 0.0f ? 0.0f : a[k2] * drop_scale(seed, base + k2, pdrop);
    P = d;
  }
  float *y = out + (size_t)b * T * C + (size_t)h * hs;  // (T, hs), stride C
  vqgpt_sgemm(false, false, T, hs, T, 1.0f, P, T, v, C3, 0.0f, y, C);
}

// The (batch, head) pairs are independent: with at least as many pairs as threads each thread
// takes whole pairs with single-threaded products (OpenBLAS does not thread inside a parallel
// region), so the cores never meet inside a small product. Every pair computes the same
// sequence of operations either way.
void vqgpt_causal_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                                    int H, float pdrop, uint64_t seed, int b0, float *scratch) {
  int BH = B * H;
  bool par = BH >= vqgpt_team_threads() && (size_t)BH * T * T >= VQGPT_PAR_MIN / 8;
#pragma omp parallel for schedule(dynamic) if (par)
  for (int bh = 0; bh < BH; bh++)
    attend_pair(out, att, qkv, bh / H, bh % H, T, C, H, pdrop, seed, b0, scratch);
}

// The backward of one (batch, head) pair; its slice of scratch first holds the probabilities
// after dropout (for dV), then dP and dS.
static void attend_pair_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                                 int b, int h, int T, int C, int H, float pdrop, uint64_t seed,
                                 int b0, float *scratch) {
  int hs = C / H, C3 = 3 * C;
  float scale = 1.0f / sqrtf((float)hs);
  size_t bh = (size_t)b * H + h, TT = (size_t)T * T, base = drop_base(b0, b, h, H, TT);
  const float *a = att + bh * TT;                               // (T, T)
  float *s = scratch + bh * TT;                                 // (T, T)
  const float *dy = dout + (size_t)b * T * C + (size_t)h * hs;  // (T, hs), stride C
  const float *q = qkv + (size_t)b * T * C3 + (size_t)h * hs;   // (T, hs), stride 3C
  const float *k = q + C, *v = q + 2 * C;
  float *dq = dqkv + (size_t)b * T * C3 + (size_t)h * hs, *dk = dq + C, *dv = dq + 2 * C;
  // dV = Pd^T dY, with Pd the probabilities after dropout.
  const float *P = a;
  if (pdrop > 0.0f) {
    for (size_t k2 = 0; k2 < TT; k2++)
      s[k2] = a[k2] == 0.0f ? 0.0f : a[k2] * drop_scale(seed, base + k2, pdrop);
    P = s;
  }
  vqgpt_sgemm(true, false, T, hs, T, 1.0f, P, T, dy, C, 0.0f, dv, C3);
  // dPd = dY V^T (Pd is no longer needed).
  vqgpt_sgemm(false, true, T, T, hs, 1.0f, dy, C, v, C3, 0.0f, s, T);
  // Softmax backward per row: dS = P (dP - sum_k P_k dP_k) * scale, dP = dPd * mask. P is zero
  // above the diagonal, so dS is too.
  for (int i = 0; i < T; i++) {
    const float *ar = a + (size_t)i * T;
    float *ds = s + (size_t)i * T;
    if (pdrop > 0.0f)
      for (int j = 0; j <= i; j++) ds[j] *= drop_scale(seed, base + (size_t)i * T + j, pdrop);
    float dot = 0;
    for (int j = 0; j <= i; j++) dot += ar[j] * ds[j];
    for (int j = 0; j <= i; j++) ds[j] = ar[j] * (ds[j] - dot) * scale;
    for (int j = i + 1; j < T; j++) ds[j] = 0.0f;
  }
  // dQ = dS K, dK = dS^T Q.
  vqgpt_sgemm(false, false, T, hs, T, 1.0f, s, T, k, C3, 0.0f, dq, C3);
  vqgpt_sgemm(true, false, T, hs, T, 1.0f, s, T, q, C3, 0.0f, dk, C3);
}

// Pairs in parallel as in the forward.
void vqgpt_causal_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                     const float *att, int B, int T, int C, int H, float pdrop,
                                     uint64_t seed, int b0, float *scratch) {
  int BH = B * H;
  bool par = BH >= vqgpt_team_threads() && (size_t)BH * T * T >= VQGPT_PAR_MIN / 8;
#pragma omp parallel for schedule(dynamic) if (par)
  for (int bh = 0; bh < BH; bh++)
    attend_pair_backward(dqkv, dout, qkv, att, bh / H, bh % H, T, C, H, pdrop, seed, b0, scratch);
}

// scores (T) = scale * K (T, hs) q, then softmax, then y (hs) = sum_j p_j V_j. With AVX2 and a
// head size that is a multiple of 8 (up to 128) the dot products and the weighted sum run in
// registers; always inlined so that a constant hs unrolls completely.
static inline __attribute__((always_inline)) void attend_one(float *y, const float *q,
                                                             const float *K, const float *V, int T,
                                                             int hs, float scale, float *s) {
#if defined(__AVX2__) && defined(__FMA__)
  if (hs % 8 == 0 && hs <= 128) {
    int n8 = hs / 8;
    for (int j = 0; j < T; j++) {
      const float *k = K + (size_t)j * hs;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      int u = 0;
      for (; u + 2 <= n8; u += 2) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * u), _mm256_loadu_ps(k + 8 * u), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * u + 8), _mm256_loadu_ps(k + 8 * u + 8), a1);
      }
      if (u < n8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * u), _mm256_loadu_ps(k + 8 * u), a0);
      s[j] = hsum256(_mm256_add_ps(a0, a1)) * scale;
    }
    softmax_inplace(s, T);
    __m256 acc[16];
    for (int u = 0; u < n8; u++) acc[u] = _mm256_setzero_ps();
    for (int j = 0; j < T; j++) {
      __m256 p = _mm256_set1_ps(s[j]);
      const float *v = V + (size_t)j * hs;
      for (int u = 0; u < n8; u++) acc[u] = _mm256_fmadd_ps(p, _mm256_loadu_ps(v + 8 * u), acc[u]);
    }
    for (int u = 0; u < n8; u++) _mm256_storeu_ps(y + 8 * u, acc[u]);
    return;
  }
#endif
  for (int j = 0; j < T; j++) s[j] = linear_dot_inline(q, K + (size_t)j * hs, hs) * scale;
  softmax_inplace(s, T);
  memset(y, 0, sizeof(float) * hs);
  for (int j = 0; j < T; j++) {
    const float *v = V + (size_t)j * hs;
    for (int d = 0; d < hs; d++) y[d] += s[j] * v[d];
  }
}

void vqgpt_causal_attention_extend(float *y, int ldy, const float *q, int ldq, const float *k,
                                   const float *v, int start, int n, int hs, float *scratch) {
  float scale = 1.0f / sqrtf((float)hs);
  int Tk = start + n;
  if (n == 1) {  // one query: dot products in registers beat a product of one row
    if (hs == 64)
      attend_one(y, q, k, v, Tk, 64, scale, scratch);
    else
      attend_one(y, q, k, v, Tk, hs, scale, scratch);
    return;
  }
  vqgpt_sgemm(false, true, n, Tk, hs, scale, q, ldq, k, hs, 0.0f, scratch, Tk);
  for (int i = 0; i < n; i++) {
    float *row = scratch + (size_t)i * Tk;
    int seen = start + i + 1;
    softmax_inplace(row, seen);
    for (int j = seen; j < Tk; j++) row[j] = 0.0f;
  }
  vqgpt_sgemm(false, false, n, hs, Tk, 1.0f, scratch, Tk, v, hs, 0.0f, y, ldy);
}
