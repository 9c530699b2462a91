// LPIPS (VGG16): parity with the reference on lpips_rand (value and gradient w.r.t. the first
// input), symmetry, batching, and a finite-difference check at an odd, non-square size.
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
  int rc = st_open(&io, fixture_path("lpips_rand_io.safetensors"));
  CHECKF(rc == 0, "open io: %s", vqgpt_last_error());
  lpips *m = lpips_load(wpath, 2, H, W);
  CHECKF(m != NULL, "load: %s", vqgpt_last_error());
  if (rc || !m) {
    lpips_free(m);
    if (!rc) st_close(&io);
    return test_finish("lpips");
  }
  static float ab[2 * N], ba[2 * N], ref_grad[N], dx[2 * N];  // (2, 3, H, W)
  float ref_value;
  const int64_t img[4] = {1, 3, H, W}, one[1] = {1};
  CHECK(st_read_f32(&io, "a", ab, 4, img) == 0 && st_read_f32(&io, "b", ab + N, 4, img) == 0);
  CHECK(st_read_f32(&io, "grad_a", ref_grad, 4, img) == 0);
  CHECK(st_read_f32(&io, "value", &ref_value, 1, one) == 0);
  memcpy(ba, ab + N, N * sizeof *ba);
  memcpy(ba + N, ab, N * sizeof *ba);

  // The fixture pair: (a, b) as one image.
  float v[2] = {0, 0};
  CHECK(lpips_forward(m, ab, ab + N, 1, v) == 0);
  CHECK_CLOSE(v, &ref_value, 1, 1e-4, "value");
  const float dv[2] = {1.0f, 0.5f};
  for (size_t i = 0; i < N; i++) dx[i] = 99.0f;
  CHECK(lpips_backward(m, dv, dx) == 0);
  // Sensitive to summation order: one pool3 window of a's branch (channel 114, output (11, 2))
  // holds two values one float ulp apart. The sgemm convolutions pick PyTorch's winner (error
  // ~2e-6); a naive convolution loop picked the other and missed by 2.5e-3 around (45, 11).
  CHECK_CLOSE(dx, ref_grad, N, 1e-3, "grad_a");

  // Batched: image 0 is (a, b), image 1 is (b, a); symmetric values, per-image gradients.
  float vb[2];
  CHECK(lpips_forward(m, ab, ba, 2, vb) == 0);
  CHECKF(fabsf(vb[0] - v[0]) <= 1e-6f * fabsf(v[0]) && fabsf(vb[1] - v[0]) <= 1e-6f * fabsf(v[0]),
         "batched values %g %g vs %g", vb[0], vb[1], v[0]);
  CHECK(lpips_backward(m, dv, dx) == 0);
  CHECK_CLOSE(dx, ref_grad, N, 1e-4, "batched grad_a");
  CHECK(lpips_forward(m, ab + N, ab, 1, v) == 0);
  float dxb[N];
  CHECK(lpips_backward(m, dv, dxb) == 0);
  for (size_t i = 0; i < N; i++) dxb[i] *= 0.5f;
  CHECK_CLOSE(dx + N, dxb, N, 1e-4, "batched second image");

  // A distance of an image to itself is 0, and more than batch is refused.
  CHECK(lpips_forward(m, ab, ab, 1, v) == 0 && v[0] == 0.0f);
  CHECK(lpips_forward(m, ab, ab, 3, v) != 0);
  lpips_free(m);

  // Odd, non-square size: floor pooling at 18x22 -> 9x11 -> 4x5 -> 2x2 -> 1x1.
  enum { H2 = 18, W2 = 22, N2 = 3 * H2 * W2 };
  lpips *s = lpips_load(wpath, 1, H2, W2);
  CHECKF(s != NULL, "load 18x22: %s", vqgpt_last_error());
  if (s) {
    static float x[N2], y[N2], g[N2];
    uint64_t st = 11;
    fill_uniform(x, N2, &st, 1.0f);
    fill_uniform(y, N2, &st, 1.0f);
    const float one_dv = 1.0f;
    float v0;
    CHECK(lpips_forward(s, x, y, 1, &v0) == 0 && lpips_backward(s, &one_dv, g) == 0);
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
        for (size_t i = 0; i < N2; i++) xp[i] = x[i] + (sgn ? -h : h) * dir[i];
        float vv = 0;
        lpips_forward(s, xp, y, 1, &vv);
        lv[sgn] = vv;
      }
      const double num = (lv[0] - lv[1]) / (2.0 * h);
      CHECKF(fabs(num - ana) < 1e-2 * fabs(ana), "directional derivative %g, finite differences %g",
             ana, num);
    }
    lpips_free(s);
  }
  CHECK(lpips_load(wpath, 1, 15, 64) == NULL);
  st_close(&io);
  return test_finish("lpips");
}
