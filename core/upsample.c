#include "core/upsample.h"

#include <stddef.h>

void vqgpt_upsample2x_forward(float *out, const float *in, int B, int C, int H, int W) {
  size_t planes = (size_t)B * C, hw = (size_t)H * W, w2 = 2 * (size_t)W;
#pragma omp parallel for schedule(static) if (planes * hw >= 16384)
  for (size_t p = 0; p < planes; p++) {
    const float *src = in + p * hw;  // (H, W)
    float *dst = out + p * 4 * hw;   // (2H, 2W)
    for (int y = 0; y < H; y++) {
      const float *s = src + (size_t)y * W;
      float *d = dst + (size_t)y * 2 * w2;
      for (int x = 0; x < W; x++) d[2 * x] = d[2 * x + 1] = s[x];
      for (size_t x = 0; x < w2; x++) d[w2 + x] = d[x];
    }
  }
}

void vqgpt_upsample2x_backward(float *din, const float *dout, int B, int C, int H, int W) {
  size_t planes = (size_t)B * C, hw = (size_t)H * W, w2 = 2 * (size_t)W;
#pragma omp parallel for schedule(static) if (planes * hw >= 16384)
  for (size_t p = 0; p < planes; p++) {
    const float *src = dout + p * 4 * hw;  // (2H, 2W)
    float *dst = din + p * hw;             // (H, W)
    for (int y = 0; y < H; y++) {
      const float *a = src + (size_t)y * 2 * w2, *b = a + w2;
      float *d = dst + (size_t)y * W;
      for (int x = 0; x < W; x++) d[x] = (a[2 * x] + a[2 * x + 1]) + (b[2 * x] + b[2 * x + 1]);
    }
  }
}
