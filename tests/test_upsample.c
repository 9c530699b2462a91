// Nearest 2x upsampling and its adjoint.
#include "core/upsample.h"

#include "core/blas.h"
#include "test_util.h"

static void run(int B, int C, int H, int W, uint64_t *rng) {
  size_t n = (size_t)B * C * H * W;
  float *in = malloc(n * sizeof *in), *out = malloc(4 * n * sizeof *out);
  float *g = malloc(4 * n * sizeof *g), *din = malloc(n * sizeof *din);
  double *ref = malloc(4 * n * sizeof *ref);
  fill_uniform(in, n, rng, 1.0f);
  fill_uniform(g, 4 * n, rng, 1.0f);
  for (size_t i = 0; i < 4 * n; i++) out[i] = NAN;
  vqgpt_upsample2x_forward(out, in, B, C, H, W);
  double md = 0;
  for (int p = 0; p < B * C; p++)
    for (int y = 0; y < 2 * H; y++)
      for (int x = 0; x < 2 * W; x++) {
        size_t o = ((size_t)p * 2 * H + y) * 2 * W + x;
        double d = fabs(out[o] - in[((size_t)p * H + y / 2) * W + x / 2]);
        if (!(d <= md)) md = d;
      }
  CHECKF(md == 0, "upsample forward %dx%dx%dx%d: max diff %g", B, C, H, W, md);

  // Backward: each input receives the sum of its four output gradients.
  for (size_t i = 0; i < n; i++) din[i] = 1e6f;
  vqgpt_upsample2x_backward(din, g, B, C, H, W);
  for (int p = 0; p < B * C; p++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        double s = 0;
        for (int dy = 0; dy < 2; dy++)
          for (int dx = 0; dx < 2; dx++)
            s += g[((size_t)p * 2 * H + 2 * y + dy) * 2 * W + 2 * x + dx];
        ref[((size_t)p * H + y) * W + x] = s;
      }
  double mr = 0;
  md = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs(din[i] - ref[i]);
    if (!(d <= md)) md = d;
    if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
  }
  CHECKF(md / (mr + 1e-6) < 1e-6, "upsample backward %dx%dx%dx%d: relative error %g", B, C, H, W,
         md / (mr + 1e-6));

  // Adjointness <up(x), g> = <x, up^T(g)> in double.
  double l = 0, r = 0;
  for (size_t i = 0; i < 4 * n; i++) l += (double)out[i] * g[i];
  for (size_t i = 0; i < n; i++) r += (double)in[i] * din[i];
  CHECKF(fabs(l - r) <= 1e-5 * (fabs(l) + 1), "upsample adjoint: %g vs %g", l, r);
  free(in), free(out), free(g), free(din), free(ref);
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  uint64_t rng = 99;
  run(1, 1, 1, 1, &rng);
  run(2, 3, 5, 7, &rng);
  run(1, 16, 32, 48, &rng);  // threaded path
  return test_finish("test_upsample");
}
