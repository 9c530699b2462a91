// PatchGAN discriminator: parity with the reference on disc_tiny (the d step's two train-mode
// passes and hinge loss, an eval pass, the g step's train-mode pass, every parameter gradient
// and the running statistics), save/load round trip, and the reference initialisation.
#include "core/blas.h"
#include "core/error.h"
#include "core/loss.h"
#include "core/rng.h"
#include "stage1_vqgan/discriminator.h"
#include "test_util.h"
#include "weights/safetensors.h"

#include <unistd.h>

enum { B = 2, C = 3, H = 32, W = 32, NX = B * C * H * W };

static float *read_io(const st_file *io, const char *name, size_t numel) {
  const st_tensor *t = vqgpt_st_find(io, name);
  CHECKF(t && t->numel == numel, "fixture tensor %s", name);
  if (!t || t->numel != numel) return NULL;
  float *v = malloc(numel * sizeof *v);
  if (v && vqgpt_st_read_f32(io, name, v, t->ndim, t->shape)) {
    fprintf(stderr, "%s\n", vqgpt_last_error());
    free(v);
    v = NULL;
  }
  return v;
}

static void check_against(const st_file *io, const char *name, const float *got, size_t n,
                          double tol) {
  float *ref = read_io(io, name, n);
  if (!ref) return;
  CHECK_CLOSE(got, ref, n, tol, name);
  free(ref);
}

static const char *bn_modules[] = {"3", "6"};
static const char *param_names[] = {
    "main.0.weight", "main.0.bias",   "main.2.weight", "main.3.weight", "main.3.bias",
    "main.5.weight", "main.6.weight", "main.6.bias",   "main.8.weight", "main.8.bias"};
enum { N_PARAMS = sizeof param_names / sizeof *param_names };

static void parity(void) {
  patchgan *d = vqgpt_patchgan_load(fixture_path("disc_tiny.safetensors"), B, H, W, 2);
  CHECKF(d != NULL, "load: %s", vqgpt_last_error());
  st_file io;
  int rc = vqgpt_st_open(&io, fixture_path("disc_tiny_io.safetensors"));
  CHECKF(rc == 0, "open io: %s", vqgpt_last_error());
  if (!d || rc) {
    vqgpt_patchgan_free(d);
    return;
  }
  const patchgan_config *cfg = vqgpt_patchgan_get_config(d);
  CHECK(cfg->input_nc == 3 && cfg->ndf == 8 && cfg->n_layers == 2);
  CHECK(vqgpt_patchgan_out_h(d) == 6 && vqgpt_patchgan_out_w(d) == 6);
  // conv weights and biases, BN affine: exactly the trainable parameters
  CHECK(vqgpt_patchgan_num_params(d) ==
        8 * 3 * 16 + 8 + 16 * 8 * 16 + 2 * 16 + 32 * 16 * 16 + 2 * 32 + 32 * 16 + 1);
  const size_t NL = B * 6 * 6;
  const int64_t nbt0 = vqgpt_patchgan_num_batches_tracked(d, 3);
  float *real = read_io(&io, "real", NX), *fake = read_io(&io, "fake", NX);
  float lr[B * 36], lf[B * 36], dr[B * 36], df[B * 36];  // (B, 1, 6, 6)
  static float dx[NX];                                   // (B, C, H, W)
  if (!real || !fake) goto done;

  // The d step: D(real) and D(fake) as two train-mode passes, each with its batch statistics.
  vqgpt_patchgan_zero_grad(d);
  CHECK(vqgpt_patchgan_forward(d, 0, real, B, true, lr) == 0);
  CHECK(vqgpt_patchgan_forward(d, 1, fake, B, true, lf) == 0);
  check_against(&io, "logits_real", lr, NL, 1e-4);
  check_against(&io, "logits_fake", lf, NL, 1e-4);
  float dloss = vqgpt_loss_d_hinge(dr, df, lr, NL, lf, NL);
  check_against(&io, "d_loss", &dloss, 1, 1e-4);
  CHECK(vqgpt_patchgan_backward(d, 0, dr, NULL, true) == 0);
  CHECK(vqgpt_patchgan_backward(d, 1, df, dx, true) == 0);
  check_against(&io, "grad_fake", dx, NX, 1e-3);
  CHECK(vqgpt_patchgan_num_batches_tracked(d, 3) == nbt0 + 2 &&
        vqgpt_patchgan_num_batches_tracked(d, 6) == nbt0 + 2);
  CHECK(vqgpt_patchgan_num_batches_tracked(d, 2) == -1);

  // Eval mode uses the running statistics of the two passes so far; it has no backward.
  CHECK(vqgpt_patchgan_forward(d, 1, fake, B, false, lf) == 0);
  check_against(&io, "eval_logits_fake", lf, NL, 1e-4);
  CHECK(vqgpt_patchgan_backward(d, 1, df, dx, true) != 0);

  // The g step: a third train-mode pass. The generator needs the input gradient only, so the
  // parameter gradients stay as they are.
  float *g0 = malloc(vqgpt_patchgan_num_params(d) * sizeof *g0);
  if (g0) memcpy(g0, vqgpt_patchgan_grads(d), vqgpt_patchgan_num_params(d) * sizeof *g0);
  CHECK(vqgpt_patchgan_forward(d, 0, fake, B, true, lf) == 0);
  float gloss = vqgpt_loss_g(df, lf, NL);
  check_against(&io, "g_loss", &gloss, 1, 1e-4);
  CHECK(vqgpt_patchgan_backward(d, 0, df, dx, false) == 0);
  check_against(&io, "grad_fake_g", dx, NX, 1e-3);
  if (g0)
    CHECK(memcmp(g0, vqgpt_patchgan_grads(d), vqgpt_patchgan_num_params(d) * sizeof *g0) == 0);
  free(g0);

  // The fixture's parameter gradients are those of d_loss and g_loss together (the reference
  // run called backward on both without zeroing), and its running statistics are those after
  // all three train-mode passes. A second backward of the same pass adds g_loss's share.
  CHECK(vqgpt_patchgan_backward(d, 0, df, NULL, true) == 0);
  for (int i = 0; i < N_PARAMS; i++) {
    size_t n = 0;
    float *g = NULL;
    CHECKF(vqgpt_patchgan_tensor(d, param_names[i], &n, &g) && g, "tensor %s", param_names[i]);
    if (!g) continue;
    char name[64];
    snprintf(name, sizeof name, "grad.%s", param_names[i]);
    check_against(&io, name, g, n, 1e-3);
  }
  for (int i = 0; i < 2; i++)
    for (int k = 0; k < 2; k++) {
      char name[64], ref[80];
      snprintf(name, sizeof name, "main.%s.running_%s", bn_modules[i], k ? "var" : "mean");
      snprintf(ref, sizeof ref, "after.%s", name);
      size_t n = 0;
      float *g = (float *)1;
      float *v = vqgpt_patchgan_tensor(d, name, &n, &g);
      CHECKF(v && g == NULL, "running statistic %s", name);
      if (v) check_against(&io, ref, v, n, 1e-4);
    }

  // Save and load back: every tensor and counter survives.
  char path[64];
  snprintf(path, sizeof path, "/tmp/test_disc_%d.safetensors", (int)getpid());
  CHECKF(vqgpt_patchgan_save(d, path) == 0, "save: %s", vqgpt_last_error());
  patchgan *e = vqgpt_patchgan_load(path, 1, H, W, 1);
  CHECKF(e != NULL, "reload: %s", vqgpt_last_error());
  if (e) {
    CHECK(vqgpt_patchgan_num_params(e) == vqgpt_patchgan_num_params(d) &&
          memcmp(vqgpt_patchgan_params(e), vqgpt_patchgan_params(d),
                 vqgpt_patchgan_num_params(d) * sizeof(float)) == 0);
    CHECK(vqgpt_patchgan_num_batches_tracked(e, 6) == nbt0 + 3);
    size_t n1, n2;
    float *a = vqgpt_patchgan_tensor(d, "main.6.running_var", &n1, NULL);
    float *b = vqgpt_patchgan_tensor(e, "main.6.running_var", &n2, NULL);
    CHECK(a && b && n1 == n2 && memcmp(a, b, n1 * sizeof *a) == 0);
    // A smaller batch than built, and a batch larger than built is refused.
    CHECK(vqgpt_patchgan_forward(e, 0, fake, 1, false, lf) == 0);
    CHECK(vqgpt_patchgan_forward(e, 0, fake, 2, false, lf) != 0);
    vqgpt_patchgan_free(e);
  }
  st_file saved;
  if (vqgpt_st_open(&saved, path) == 0) {
    const st_tensor *t = vqgpt_st_find(&saved, "main.3.num_batches_tracked");
    CHECK(t && t->dtype == ST_I64);
    const char *fmt = vqgpt_st_meta(&saved, "format");
    CHECK(fmt && !strcmp(fmt, "taming-patchgan"));
    vqgpt_st_close(&saved);
  }
  // A NaN in a weight, or a tensor the config does not describe, is refused by name.
  float *w0 = vqgpt_patchgan_tensor(d, "main.0.weight", NULL, NULL);
  float keep = w0[3];
  w0[3] = NAN;
  CHECK(vqgpt_patchgan_save(d, path) == 0);
  CHECK(vqgpt_patchgan_load(path, 1, H, W, 1) == NULL &&
        strstr(vqgpt_last_error(),
               "tensor 'main.0.weight' holds a non-finite value (nan at index 3)"));
  w0[3] = keep;
  CHECK(vqgpt_patchgan_save(d, path) == 0);
  st_file orig;
  if (vqgpt_st_open(&orig, path) == 0) {
    st_writer *w = vqgpt_st_writer_new();
    for (size_t i = 0; i < orig.n_tensors; i++) {
      const st_tensor *t = &orig.tensors[i];
      vqgpt_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data);
    }
    int64_t one = 1;
    vqgpt_st_writer_add(w, "main.99.weight", ST_F32, 1, &one, &keep);
    for (size_t i = 0; i < orig.n_meta; i++)
      vqgpt_st_writer_meta(w, orig.meta_keys[i], orig.meta_values[i]);
    char extra[80];
    snprintf(extra, sizeof extra, "%s.extra", path);
    CHECK(vqgpt_st_writer_save(w, extra) == 0);
    vqgpt_st_writer_free(w);
    vqgpt_st_close(&orig);
    CHECK(vqgpt_patchgan_load(extra, 1, H, W, 1) == NULL &&
          strstr(vqgpt_last_error(), "'main.99.weight' is not part of"));
    unlink(extra);
  }
  unlink(path);
done:
  free(real);
  free(fake);
  vqgpt_st_close(&io);
  vqgpt_patchgan_free(d);
}

static void init(void) {
  patchgan_config cfg = {3, 16, 3};
  uint64_t rng = 1234, rng2 = 1234;
  patchgan *d = vqgpt_patchgan_create(&cfg, 1, 64, 64, 1, &rng);
  patchgan *e = vqgpt_patchgan_create(&cfg, 1, 64, 64, 1, &rng2);
  CHECKF(d && e, "create: %s", vqgpt_last_error());
  if (!d || !e) goto out;
  CHECK(memcmp(vqgpt_patchgan_params(d), vqgpt_patchgan_params(e),
               vqgpt_patchgan_num_params(d) * sizeof(float)) == 0);
  CHECK(vqgpt_patchgan_out_h(d) == 6);  // 64 -> 32 -> 16 -> 8 -> 7 -> 6
  size_t n;
  float *w = vqgpt_patchgan_tensor(d, "main.8.weight", &n, NULL);  // (128, 64, 4, 4)
  CHECK(w && n == 128 * 64 * 16);
  if (w) {
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) s += w[i], s2 += (double)w[i] * w[i];
    const double m = s / n, sd = sqrt(s2 / n - m * m);
    CHECKF(fabs(m) < 1e-3 && fabs(sd - 0.02) < 1e-3, "conv init mean %g std %g", m, sd);
  }
  float *gamma = vqgpt_patchgan_tensor(d, "main.9.weight", &n, NULL),
        *beta = vqgpt_patchgan_tensor(d, "main.9.bias", NULL, NULL);
  float *rv = vqgpt_patchgan_tensor(d, "main.9.running_var", NULL, NULL);
  CHECK(gamma && beta && rv && n == 128);
  if (gamma && beta && rv) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad += fabsf(gamma[i] - 1) > 0.1f || beta[i] != 0 || rv[i] != 1;
    CHECK(bad == 0);
  }
  float *b0 =
      vqgpt_patchgan_tensor(d, "main.0.bias", &n, NULL);  // default conv bias: U(+-1/sqrt(48))
  CHECK(b0 && n == 16);
  if (b0) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad += fabsf(b0[i]) > 1 / sqrtf(48.0f) || b0[i] == 0;
    CHECK(bad == 0);
  }
  CHECK(vqgpt_patchgan_tensor(d, "main.2.bias", NULL, NULL) ==
        NULL);  // convs before a norm: no bias
  // Inputs too small for the layers are refused.
  CHECK(vqgpt_patchgan_create(&cfg, 1, 8, 8, 1, &rng) == NULL);
  patchgan_config bad = {3, 8, 0};
  CHECK(vqgpt_patchgan_create(&bad, 1, 64, 64, 1, &rng) == NULL);
out:
  vqgpt_patchgan_free(d);
  vqgpt_patchgan_free(e);
}

// Repeating a train-mode pass's statistics update equals running that forward pass again.
static void repeat_stats(void) {
  patchgan_config cfg = {3, 8, 2};
  uint64_t rng = 7, rng2 = 7, xr = 99;
  const int B = 2, S = 32;
  patchgan *d = vqgpt_patchgan_create(&cfg, B, S, S, 2, &rng);
  patchgan *e = vqgpt_patchgan_create(&cfg, B, S, S, 2, &rng2);
  size_t nx = (size_t)B * 3 * S * S, nl = (size_t)B * 6 * 6;
  float *x = malloc(nx * sizeof *x), *l = malloc(nl * sizeof *l);
  CHECKF(d && e && x && l, "create: %s", vqgpt_last_error());
  if (!d || !e || !x || !l) goto out;
  for (size_t i = 0; i < nx; i++) x[i] = (float)(vqgpt_rng_uniform_double(&xr) * 2 - 1);
  CHECK(vqgpt_patchgan_repeat_train_stats(d, 1) != 0);  // nothing kept in slot 1 yet
  CHECK(vqgpt_patchgan_forward(d, 1, x, B, true, l) == 0 &&
        vqgpt_patchgan_forward(d, 0, x, B, true, l) == 0);
  CHECK(vqgpt_patchgan_repeat_train_stats(d, 1) == 0);
  for (int k = 0; k < 3; k++) CHECK(vqgpt_patchgan_forward(e, k == 1, x, B, true, l) == 0);
  static const char *stats[] = {"main.3.running_mean", "main.3.running_var", "main.6.running_mean",
                                "main.6.running_var"};
  for (int i = 0; i < 4; i++) {
    size_t n1, n2;
    const float *a = vqgpt_patchgan_tensor(d, stats[i], &n1, NULL);
    const float *b = vqgpt_patchgan_tensor(e, stats[i], &n2, NULL);
    CHECKF(a && b && n1 == n2 && memcmp(a, b, n1 * sizeof *a) == 0, "%s after a repeat", stats[i]);
  }
  CHECK(vqgpt_patchgan_num_batches_tracked(d, 3) == 3 &&
        vqgpt_patchgan_num_batches_tracked(d, 6) == 3);
  CHECK(vqgpt_patchgan_forward(d, 1, x, B, false, l) == 0 &&
        vqgpt_patchgan_repeat_train_stats(d, 1) != 0);
out:
  free(x);
  free(l);
  vqgpt_patchgan_free(d);
  vqgpt_patchgan_free(e);
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  parity();
  init();
  repeat_stats();
  return test_finish("discriminator");
}
