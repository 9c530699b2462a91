// LPIPS (VGG16): parity with the reference on lpips_rand (value and gradient w.r.t. the first
// input), batching, and a finite-difference check at an odd, non-square size.
#include "core/blas.h"
#include "core/error.h"
#include "stage1_vqgan/lpips.h"
#include "test_util.h"
#include "weights/safetensors.h"

enum { H = 64, W = 64, N = 3 * H * W };

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  const char *weights = fixture_path("lpips_rand.safetensors");
  char wpath[4096];
  snprintf(wpath, sizeof wpath, "%s", weights);
  st_file io;
  int rc = vqgpt_st_open(&io, fixture_path("lpips_rand_io.safetensors"));
  CHECKF(rc == 0, "open io: %s", vqgpt_last_error());
  lpips *m = vqgpt_lpips_load(wpath, 2, H, W);
  CHECKF(m != NULL, "load: %s", vqgpt_last_error());
  if (rc || !m) {
    vqgpt_lpips_free(m);
    if (!rc) vqgpt_st_close(&io);
    return test_finish("lpips");
  }
  // A batch of two pairs: x = (a, a), y = (b, a). The first is the fixture's; the second is an
  // image against itself, at distance 0 with zero gradient.
  static float x[2 * N], y[2 * N], ref_grad[N], dx[2 * N];  // (2, 3, H, W)
  float ref_value;
  const int64_t img[4] = {1, 3, H, W}, one[1] = {1};
  CHECK(vqgpt_st_read_f32(&io, "a", x, 4, img) == 0 && vqgpt_st_read_f32(&io, "b", y, 4, img) == 0);
  CHECK(vqgpt_st_read_f32(&io, "grad_a", ref_grad, 4, img) == 0);
  CHECK(vqgpt_st_read_f32(&io, "value", &ref_value, 1, one) == 0);
  memcpy(x + N, x, N * sizeof *x);
  memcpy(y + N, x, N * sizeof *y);

  float v[2] = {0, 0};
  CHECK(vqgpt_lpips_forward(m, x, y, 2, v) == 0);
  CHECK_CLOSE(v, &ref_value, 1, 1e-4, "value");
  CHECKF(v[1] == 0.0f, "distance of an image to itself: %g", v[1]);
  const float dv[2] = {0.5f, 0.7f};
  for (size_t i = 0; i < 2 * N; i++) dx[i] = 99.0f;
  CHECK(vqgpt_lpips_backward(m, dv, dx) == 0);
  for (size_t i = 0; i < N; i++) dx[i] *= 2.0f;
  // Sensitive to summation order: one pool3 window of a's branch (channel 114, output (11, 2))
  // holds two values one float ulp apart. The sgemm convolutions pick PyTorch's winner (error
  // ~2e-6); a naive convolution loop picked the other and missed by 2.5e-3 around (45, 11).
  CHECK_CLOSE(dx, ref_grad, N, 1e-3, "grad_a");
  int nonzero = 0;
  for (size_t i = N; i < 2 * N; i++) nonzero += dx[i] != 0.0f;
  CHECKF(nonzero == 0, "%d nonzero gradients for the identical pair", nonzero);

  // Fewer images than built; more are refused.
  float v1 = 0;
  CHECK(vqgpt_lpips_forward(m, x, y, 1, &v1) == 0);
  CHECK_CLOSE(&v1, &ref_value, 1, 1e-4, "value at batch 1");
  CHECK(vqgpt_lpips_forward(m, x, y, 3, v) != 0);
  vqgpt_lpips_free(m);

  // Odd, non-square size: floor pooling at 18x22 -> 9x11 -> 4x5 -> 2x2 -> 1x1.
  enum { H2 = 18, W2 = 22, N2 = 3 * H2 * W2 };
  lpips *s = vqgpt_lpips_load(wpath, 1, H2, W2);
  CHECKF(s != NULL, "load 18x22: %s", vqgpt_last_error());
  if (s) {
    static float x2[N2], y2[N2], g[N2];
    uint64_t st = 11;
    fill_uniform(x2, N2, &st, 1.0f);
    fill_uniform(y2, N2, &st, 1.0f);
    const float one_dv = 1.0f;
    float v0;
    CHECK(vqgpt_lpips_forward(s, x2, y2, 1, &v0) == 0 && vqgpt_lpips_backward(s, &one_dv, g) == 0);
    // Directional derivatives along random directions with the signs of the gradient: every
    // pixel's gradient counts, with the same sign, so the derivative stays far above the float
    // rounding noise of the value (which swamps one-pixel differences and random directions).
    for (int t = 0; t < 2; t++) {
      static float dir[N2], xp[N2];
      fill_uniform(dir, N2, &st, 0.5f);
      for (size_t i = 0; i < N2; i++) dir[i] = (g[i] > 0 ? 1.0f : -1.0f) * (0.5f + dir[i]);
      const float h = 2e-4f;
      double ana = 0, lv[2];
      for (size_t i = 0; i < N2; i++) ana += (double)g[i] * dir[i];
      for (int sgn = 0; sgn < 2; sgn++) {
        for (size_t i = 0; i < N2; i++) xp[i] = x2[i] + (sgn ? -h : h) * dir[i];
        float vv = 0;
        vqgpt_lpips_forward(s, xp, y2, 1, &vv);
        lv[sgn] = vv;
      }
      const double num = (lv[0] - lv[1]) / (2.0 * h);
      CHECKF(fabs(num - ana) < 1e-2 * fabs(ana), "directional derivative %g, finite differences %g",
             ana, num);
    }
    vqgpt_lpips_free(s);
  }
  CHECK(vqgpt_lpips_load(wpath, 1, 15, 64) == NULL);
  vqgpt_st_close(&io);
  return test_finish("lpips");
}
