#include "core/causal_attention.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "core/linear.h"
#include "core/parallel.h"
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

void causal_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                              int H, float pdrop, uint64_t seed) {
  int hs = C / H;
  float scale = 1.0f / sqrtf((float)hs);
  size_t C3 = (size_t)3 * C;
  size_t work = (size_t)B * T * T * C;
#pragma omp parallel for collapse(2) schedule(static) if (work >= 8 * VQGPT_PAR_MIN)
  for (int bh = 0; bh < B * H; bh++) {
    for (int i = 0; i < T; i++) {
      int b = bh / H, h = bh % H;
      const float *base = qkv + (size_t)b * T * C3;              // (T, 3C)
      const float *q = base + (size_t)i * C3 + (size_t)h * hs;   // (hs)
      float *a = att + ((size_t)bh * T + i) * T;                 // (T)
      for (int j = 0; j <= i; j++) a[j] = linear_dot_inline(q, base + (size_t)j * C3 + C + h * hs, hs) * scale;
      softmax_inplace(a, i + 1);
      for (int j = i + 1; j < T; j++) a[j] = 0.0f;
      float *y = out + ((size_t)b * T + i) * C + (size_t)h * hs;  // (hs)
      memset(y, 0, sizeof(float) * hs);
      for (int j = 0; j <= i; j++) {
        float p = a[j];
        if (pdrop > 0.0f) p *= drop_scale(seed, ((size_t)bh * T + i) * T + j, pdrop);
        const float *v = base + (size_t)j * C3 + 2 * C + h * hs;
        for (int d = 0; d < hs; d++) y[d] += p * v[d];
      }
    }
  }
}

void causal_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                               int B, int T, int C, int H, float pdrop, uint64_t seed,
                               float *scratch) {
  int hs = C / H;
  float scale = 1.0f / sqrtf((float)hs);
  size_t C3 = (size_t)3 * C;
  // One (batch, head) per iteration: it owns its columns of dqkv, so there are no races and
  // every sum keeps one order.
#pragma omp parallel for schedule(static) if ((size_t)B * T * T * C >= 8 * VQGPT_PAR_MIN)
  for (int bh = 0; bh < B * H; bh++) {
    int b = bh / H, h = bh % H;
    const float *base = qkv + (size_t)b * T * C3;   // (T, 3C)
    float *dbase = dqkv + (size_t)b * T * C3;       // (T, 3C)
    const float *A = att + (size_t)bh * T * T;      // (T, T)
    float *dS = scratch + (size_t)bh * T * T;       // (T, T)
    for (int t = 0; t < T; t++) memset(dbase + (size_t)t * C3 + (size_t)h * hs, 0, sizeof(float) * hs);
    for (int t = 0; t < T; t++) memset(dbase + (size_t)t * C3 + C + (size_t)h * hs, 0, sizeof(float) * hs);
    for (int t = 0; t < T; t++) memset(dbase + (size_t)t * C3 + 2 * C + (size_t)h * hs, 0, sizeof(float) * hs);
    for (int i = 0; i < T; i++) {
      const float *dy = dout + ((size_t)b * T + i) * C + (size_t)h * hs;  // (hs)
      const float *a = A + (size_t)i * T;
      float *ds = dS + (size_t)i * T;
      // dP (after dropout) = dy . v_j; dv_j += P_dropped * dy.
      for (int j = 0; j <= i; j++) {
        const float *v = base + (size_t)j * C3 + 2 * C + h * hs;
        float *dv = dbase + (size_t)j * C3 + 2 * C + h * hs;
        float m = pdrop > 0.0f ? drop_scale(seed, ((size_t)bh * T + i) * T + j, pdrop) : 1.0f;
        float pd = a[j] * m;
        for (int d = 0; d < hs; d++) dv[d] += pd * dy[d];
        ds[j] = linear_dot_inline(dy, v, hs) * m;
      }
      // Softmax backward: dS_j = P_j (dP_j - sum_k P_k dP_k), then the 1/sqrt(hs) scale.
      float dot = 0;
      for (int j = 0; j <= i; j++) dot += a[j] * ds[j];
      for (int j = 0; j <= i; j++) ds[j] = a[j] * (ds[j] - dot) * scale;
      const float *q = base + (size_t)i * C3 + (size_t)h * hs;
      float *dq = dbase + (size_t)i * C3 + (size_t)h * hs;
      for (int j = 0; j <= i; j++) {
        const float *k = base + (size_t)j * C3 + C + h * hs;
        float *dk = dbase + (size_t)j * C3 + C + h * hs;
        float g = ds[j];
        for (int d = 0; d < hs; d++) {
          dq[d] += g * k[d];
          dk[d] += g * q[d];
        }
      }
    }
  }
}

void causal_attention_step(float *out, const float *q, const float *k_cache, const float *v_cache,
                           int B, int T, int Tmax, int C, int H, float *scratch) {
  int hs = C / H;
  float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for schedule(static) if ((size_t)B * T * C >= VQGPT_PAR_MIN)
  for (int bh = 0; bh < B * H; bh++) {
    int b = bh / H, h = bh % H;
    const float *qh = q + (size_t)b * C + (size_t)h * hs;          // (hs)
    const float *K = k_cache + (size_t)b * Tmax * C + (size_t)h * hs;  // (T, C) strided
    const float *V = v_cache + (size_t)b * Tmax * C + (size_t)h * hs;
    float *s = scratch + (size_t)bh * T;  // (T)
    for (int j = 0; j < T; j++) s[j] = linear_dot_inline(qh, K + (size_t)j * C, hs) * scale;
    softmax_inplace(s, T);
    float *y = out + (size_t)b * C + (size_t)h * hs;  // (hs)
    memset(y, 0, sizeof(float) * hs);
    for (int j = 0; j < T; j++) {
      const float *v = V + (size_t)j * C;
      for (int d = 0; d < hs; d++) y[d] += s[j] * v[d];
    }
  }
}
