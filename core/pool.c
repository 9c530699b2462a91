#include "core/pool.h"

#include <stddef.h>
#include <string.h>

void vqgpt_maxpool2x2_forward(float *out, uint8_t *argmax, const float *in, int B, int C, int H,
                              int W) {
  const int Ho = H / 2, Wo = W / 2;
  const size_t planes = (size_t)B * C;
#pragma omp parallel for schedule(static)
  for (size_t p = 0; p < planes; p++) {
    const float *x = in + p * (size_t)H * W;  // (H, W)
    float *y = out + p * (size_t)Ho * Wo;     // (Ho, Wo)
    uint8_t *a = argmax + p * (size_t)Ho * Wo;
    for (int i = 0; i < Ho; i++) {
      const float *r0 = x + (size_t)(2 * i) * W, *r1 = r0 + W;
      for (int j = 0; j < Wo; j++) {
        const float v[4] = {r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]};
        int best = 0;
        // Same comparison as PyTorch's kernel, so ties and NaNs pick the same winner.
        for (int k = 1; k < 4; k++)
          if (v[k] > v[best] || v[k] != v[k]) best = k;
        y[(size_t)i * Wo + j] = v[best];
        a[(size_t)i * Wo + j] = (uint8_t)best;
      }
    }
  }
}

void vqgpt_maxpool2x2_backward(float *din, const float *dout, const uint8_t *argmax, int B, int C,
                               int H, int W) {
  const int Ho = H / 2, Wo = W / 2;
  const size_t planes = (size_t)B * C;
#pragma omp parallel for schedule(static)
  for (size_t p = 0; p < planes; p++) {
    float *dx = din + p * (size_t)H * W;  // (H, W)
    const float *dy = dout + p * (size_t)Ho * Wo;
    const uint8_t *a = argmax + p * (size_t)Ho * Wo;
    memset(dx, 0, (size_t)H * W * sizeof *dx);
    for (int i = 0; i < Ho; i++)
      for (int j = 0; j < Wo; j++) {
        const int k = a[(size_t)i * Wo + j];
        dx[(size_t)(2 * i + (k >> 1)) * W + 2 * j + (k & 1)] = dy[(size_t)i * Wo + j];
      }
  }
}
