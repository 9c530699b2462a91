// Parity of the VQGAN forward with the reference (fixtures vqgan_tiny*), both cases.
#include "core/blas.h"
#include "core/error.h"
#include "data/image.h"
#include "stage1_vqgan/vqgan.h"
#include "test_util.h"
#include "weights/safetensors.h"

static float *read_tensor(const st_file *f, const char *name, size_t *numel) {
  const st_tensor *t = vqgpt_st_find(f, name);
  if (!t) return NULL;
  float *x = malloc(t->numel * sizeof *x);
  if (x && vqgpt_st_read_f32(f, name, x, t->ndim, t->shape)) {
    free(x);
    return NULL;
  }
  *numel = t->numel;
  return x;
}

static void check_case(vqgan *m, const st_file *io, int k) {
  char name[64];
  size_t nx, nz, nzq, nrec, nq, nl;
  snprintf(name, sizeof name, "case%d.x", k);
  const st_tensor *tx = vqgpt_st_find(io, name);
  CHECK(tx != NULL);
  if (!tx) return;
  int H = (int)tx->shape[2], W = (int)tx->shape[3], h = H / 4, w = W / 4;
  float *x = read_tensor(io, name, &nx);
  snprintf(name, sizeof name, "case%d.z", k);
  float *zref = read_tensor(io, name, &nz);
  snprintf(name, sizeof name, "case%d.zq", k);
  float *zqref = read_tensor(io, name, &nzq);
  snprintf(name, sizeof name, "case%d.xrec", k);
  float *xrec_ref = read_tensor(io, name, &nrec);
  snprintf(name, sizeof name, "case%d.qloss", k);
  float *qloss_ref = read_tensor(io, name, &nq);
  snprintf(name, sizeof name, "case%d.loss", k);
  float *loss_ref = read_tensor(io, name, &nl);
  int32_t *idx_ref = malloc((size_t)h * w * sizeof *idx_ref);
  snprintf(name, sizeof name, "case%d.indices", k);
  int64_t ishape[2] = {h, w};
  CHECK(vqgpt_st_read_i32(io, name, idx_ref, 2, ishape) == 0);

  // The PNG holds the same pixels as the tensor.
  char png[64];
  snprintf(png, sizeof png, "vqgan_tiny_input%d.png", k);
  image_rgb img;
  CHECK(vqgpt_image_load(&img, fixture_path(png)) == 0);
  float *xp = malloc(nx * sizeof *xp);
  CHECK(img.w == W && img.h == H);
  if (img.w == W && img.h == H) {
    vqgpt_image_to_tensor(&img, xp);
    CHECK_CLOSE(xp, x, nx, 1e-6, "png pixels");
  }
  vqgpt_image_free(&img);

  int32_t *idx = malloc((size_t)h * w * sizeof *idx);
  float *z = malloc(nz * sizeof *z), qloss = -1;
  CHECK(vqgpt_vqgan_encode(m, x, 1, H, W, idx, z, &qloss) == 0);
  CHECK_CLOSE(z, zref, nz, 1e-4, "encoder output z");
  int same = 1;
  for (int i = 0; i < h * w; i++) same &= idx[i] == idx_ref[i];
  CHECKF(same, "case%d: indices differ from the reference", k);
  CHECK_CLOSE(&qloss, qloss_ref, 1, 1e-4, "quantization loss");

  float *xrec = malloc(nrec * sizeof *xrec);
  CHECK(vqgpt_vqgan_decode(m, idx_ref, 1, h, w, xrec) == 0);
  CHECK_CLOSE(xrec, xrec_ref, nrec, 1e-4, "decoder output");
  double l1 = 0;
  for (size_t i = 0; i < nx; i++) l1 += fabs((double)x[i] - xrec[i]);
  float loss = (float)(l1 / nx + qloss);
  CHECK_CLOSE(&loss, loss_ref, 1, 1e-4, "total loss");
  (void)zqref;
  free(x), free(xp), free(zref), free(zqref), free(xrec_ref), free(qloss_ref), free(loss_ref);
  free(idx_ref), free(idx), free(z), free(xrec);
}

static void check_bad_sizes(vqgan *m) {
  float x[3 * 30 * 32] = {0};
  int32_t idx[64];
  CHECK(vqgpt_vqgan_encode(m, x, 1, 30, 32, idx, NULL, NULL) != 0);
  CHECK(strstr(vqgpt_last_error(), "multiple") != NULL);
  int32_t bad[4] = {0, 1, 64, 2};
  float out[3 * 8 * 8];
  CHECK(vqgpt_vqgan_decode(m, bad, 1, 2, 2, out) != 0);
  CHECK(strstr(vqgpt_last_error(), "outside the codebook") != NULL);
  bad[2] = -1;
  CHECK(vqgpt_vqgan_decode(m, bad, 1, 2, 2, out) != 0);
}

static void check_save_roundtrip(vqgan *m) {
  const char *path = "/tmp/vqgpt_test_vqgan_roundtrip.safetensors";
  CHECK(vqgpt_vqgan_save(m, path) == 0);
  vqgan *m2 = vqgpt_vqgan_load(path);
  CHECK(m2 != NULL);
  if (m2) {
    float x[3 * 32 * 32];
    uint64_t s = 7;
    fill_uniform(x, sizeof x / sizeof x[0], &s, 1.0f);
    int32_t a[64], b[64];
    CHECK(vqgpt_vqgan_encode(m, x, 1, 32, 32, a, NULL, NULL) == 0);
    CHECK(vqgpt_vqgan_encode(m2, x, 1, 32, 32, b, NULL, NULL) == 0);
    CHECK(memcmp(a, b, sizeof a) == 0);
    vqgpt_vqgan_free(m2);
  }
  remove(path);
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  vqgan *m = vqgpt_vqgan_load(fixture_path("vqgan_tiny.safetensors"));
  CHECKF(m != NULL, "load: %s", vqgpt_last_error());
  st_file io;
  int io_ok = vqgpt_st_open(&io, fixture_path("vqgan_tiny_io.safetensors")) == 0;
  CHECK(io_ok);
  if (m && io_ok) {
    CHECK(vqgpt_vqgan_factor(m) == 4);
    check_case(m, &io, 0);
    check_case(m, &io, 1);
    check_bad_sizes(m);
    check_save_roundtrip(m);
  }
  if (io_ok) vqgpt_st_close(&io);
  vqgpt_vqgan_free(m);
  return test_finish("test_vqgan");
}
