// MaxPool2d(2, 2): forward against a brute-force reference (odd sizes, ties, NaN) and
// backward against finite differences.
#include "core/blas.h"
#include "core/pool.h"
#include "test_util.h"

typedef struct {
  float *x, *w, *out;
  uint8_t *am;
  int B, C, H, W;
} pool_ctx;

static double pool_loss(void *p) {
  pool_ctx *c = p;
  vqgpt_maxpool2x2_forward(c->out, c->am, c->x, c->B, c->C, c->H, c->W);
  double s = 0;
  for (size_t i = 0; i < (size_t)c->B * c->C * (c->H / 2) * (c->W / 2); i++)
    s += (double)c->w[i] * c->out[i];
  return s;
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  enum {
    B = 2,
    C = 3,
    H = 9,
    W = 6,
    Ho = H / 2,
    Wo = W / 2,
    N = B * C * H * W,
    M = B * C * Ho * Wo
  };
  uint64_t rng = 7;
  float x[N], out[M], w[M], din[N];  // x, din: (B, C, H, W); out, w: (B, C, Ho, Wo)
  uint8_t am[M];
  fill_uniform(x, N, &rng, 1.0f);
  fill_uniform(w, M, &rng, 1.0f);
  vqgpt_maxpool2x2_forward(out, am, x, B, C, H, W);
  int bad = 0;
  for (int p = 0; p < B * C; p++)
    for (int i = 0; i < Ho; i++)
      for (int j = 0; j < Wo; j++) {
        float m = -INFINITY;
        for (int di = 0; di < 2; di++)
          for (int dj = 0; dj < 2; dj++) {
            float v = x[(size_t)p * H * W + (size_t)(2 * i + di) * W + 2 * j + dj];
            if (v > m) m = v;
          }
        const size_t o = (size_t)p * Ho * Wo + (size_t)i * Wo + j;
        const int k = am[o];
        if (out[o] != m || x[(size_t)p * H * W + (size_t)(2 * i + k / 2) * W + 2 * j + k % 2] != m)
          bad++;
      }
  CHECKF(bad == 0, "%d forward mismatches", bad);

  pool_ctx ctx = {x, w, out, am, B, C, H, W};
  pool_loss(&ctx);
  for (int i = 0; i < N; i++) din[i] = 9.0f;  // overwritten, including the dropped last row
  vqgpt_maxpool2x2_backward(din, w, am, B, C, H, W);
  double e = fd_check(pool_loss, &ctx, x, din, N, N, 1e-3f);
  CHECKF(e < 1e-3, "finite-difference error %.3g", e);
  int nz = 0;
  for (int p = 0; p < B * C; p++)
    for (int j = 0; j < W; j++) nz += din[(size_t)p * H * W + (size_t)(H - 1) * W + j] != 0;
  CHECKF(nz == 0, "%d gradients in the dropped row", nz);

  // Ties go to the first in scan order; a NaN wins and propagates.
  const float tie[4] = {1, 2, 2, 0}, nan4[4] = {1, NAN, 5, 0};
  float o1;
  uint8_t a1;
  vqgpt_maxpool2x2_forward(&o1, &a1, tie, 1, 1, 2, 2);
  CHECK(o1 == 2 && a1 == 1);
  vqgpt_maxpool2x2_forward(&o1, &a1, nan4, 1, 1, 2, 2);
  CHECK(isnan(o1) && a1 == 1);
  return test_finish("pool");
}
