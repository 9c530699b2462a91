// Parity of a GumbelVQ (GumbelQuantize: argmax codes of quantize.proj, quantize.embed codebook)
// with the reference (fixtures gumbel_tiny*, made by tests/make_gumbel_fixture.py): the
// quant_conv output, the codes exactly, the decoder output; save/load round trip; training
// refused.
#include <unistd.h>

#include "core/blas.h"
#include "core/error.h"
#include "data/image.h"
#include "stage1_vqgan/vqgan.h"
#include "stage1_vqgan/vqgan_train.h"
#include "test_util.h"
#include "weights/safetensors.h"

static float *read_tensor(const st_file *f, const char *name, size_t *numel) {
  const st_tensor *t = vqgpt_st_find(f, name);
  if (!t) return NULL;
  float *x = alloc_f(t->numel);
  if (vqgpt_st_read_f32(f, name, x, t->ndim, t->shape)) {
    free(x);
    return NULL;
  }
  *numel = t->numel;
  return x;
}

static void check_parity(vqgan *m, const st_file *io) {
  const st_tensor *tx = vqgpt_st_find(io, "x");
  CHECK(tx != NULL);
  if (!tx) return;
  int f = vqgpt_vqgan_factor(m), H = (int)tx->shape[2], W = (int)tx->shape[3], h = H / f, w = W / f;
  size_t nx = 0, nz = 0, nrec = 0;
  float *x = read_tensor(io, "x", &nx), *zref = read_tensor(io, "z", &nz);
  float *xrec_ref = read_tensor(io, "xrec", &nrec);
  CHECK(x && zref && xrec_ref);
  int32_t *idx_ref = malloc((size_t)h * w * sizeof *idx_ref);
  int64_t ishape[2] = {h, w};
  CHECK(vqgpt_st_read_i32(io, "indices", idx_ref, 2, ishape) == 0);

  // The PNG holds the same pixels as the tensor.
  image_rgb img;
  CHECK(vqgpt_image_load(&img, fixture_path("gumbel_tiny_input.png")) == 0);
  if (x && img.w == W && img.h == H) {
    float *xp = alloc_f(nx);
    vqgpt_image_to_tensor(&img, xp);
    CHECK_CLOSE(xp, x, nx, 1e-6, "png pixels");
    free(xp);
  }
  vqgpt_image_free(&img);

  int32_t *idx = malloc((size_t)h * w * sizeof *idx);
  float *z = alloc_f(nz), *xrec = alloc_f(nrec), qloss = -1;
  if (x && zref && xrec_ref) {
    CHECK(vqgpt_vqgan_encode(m, x, 1, H, W, idx, z, &qloss) == 0);
    CHECK_CLOSE(z, zref, nz, 1e-4, "quant_conv output");
    int same = 0;
    for (int i = 0; i < h * w; i++) same += idx[i] == idx_ref[i];
    CHECKF(same == h * w, "codes: %d of %d equal the reference's argmax", same, h * w);
    CHECK(qloss == 0);
    CHECK(vqgpt_vqgan_decode(m, idx_ref, 1, h, w, xrec) == 0);
    CHECK_CLOSE(xrec, xrec_ref, nrec, 1e-4, "decoder output");
  }
  free(x);
  free(zref);
  free(xrec_ref);
  free(idx_ref);
  free(idx);
  free(z);
  free(xrec);
}

// Saved and loaded again: the same quantizer, tensors and codes.
static void check_round_trip(vqgan *m) {
  char path[96];
  snprintf(path, sizeof path, "%s/gumbel.safetensors", tmpdir);
  CHECK(vqgpt_vqgan_save(m, path) == 0);
  vqgan *m2 = vqgpt_vqgan_load(path);
  CHECKF(m2 != NULL, "reload: %s", vqgpt_last_error());
  if (!m2) return;
  CHECK(vqgpt_vqgan_get_config(m2)->quantizer == VQGAN_GUMBEL);
  CHECK(vqgpt_vqgan_fingerprint(m2) == vqgpt_vqgan_fingerprint(m));
  st_file f;
  CHECK(vqgpt_st_open(&f, path) == 0);
  CHECK(vqgpt_st_find(&f, "quantize.proj.weight") && vqgpt_st_find(&f, "quantize.proj.bias") &&
        vqgpt_st_find(&f, "quantize.embed.weight") &&
        !vqgpt_st_find(&f, "quantize.embedding.weight"));
  vqgpt_st_close(&f);
  unlink(path);
  vqgpt_vqgan_free(m2);
}

static void check_training_refused(vqgan *m) {
  vqgan_train_opts o;
  vqgpt_vqgan_train_defaults(&o);
  o.batch = 1;
  o.size = 16;
  vqgan_trainer *t = vqgpt_vqgan_trainer_new(m, NULL, NULL, &o);
  CHECK(t == NULL);
  CHECK(strstr(vqgpt_last_error(), "Gumbel") != NULL);
  vqgpt_vqgan_trainer_free(t);
}

static void check_bad_quantizer(void) {
  vqgan_config c;
  CHECK(vqgpt_vqgan_config_parse(
            &c,
            "{\"quantizer\": \"ema\", \"embed_dim\": 4, \"n_embed\": 8, \"ddconfig\": "
            "{\"z_channels\": 4, \"resolution\": 8, \"in_channels\": 3, \"out_ch\": 3, "
            "\"ch\": 32, \"ch_mult\": [1], \"num_res_blocks\": 0, \"attn_resolutions\": []}}",
            "bad.json") != 0);
  CHECK(strstr(vqgpt_last_error(), "quantizer") != NULL);
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/test_gumbel.XXXXXX");
  if (!mkdtemp(tmpdir)) return 2;
  vqgan *m = vqgpt_vqgan_load(fixture_path("gumbel_tiny.safetensors"));
  CHECKF(m != NULL, "load: %s", vqgpt_last_error());
  st_file io;
  int io_ok = vqgpt_st_open(&io, fixture_path("gumbel_tiny_io.safetensors")) == 0;
  CHECK(io_ok);
  if (m) {
    CHECK(vqgpt_vqgan_get_config(m)->quantizer == VQGAN_GUMBEL);
    if (io_ok) check_parity(m, &io);
    check_round_trip(m);
    check_training_refused(m);
  }
  check_bad_quantizer();
  if (io_ok) vqgpt_st_close(&io);
  vqgpt_vqgan_free(m);
  rmdir(tmpdir);
  return test_finish("test_gumbel");
}
