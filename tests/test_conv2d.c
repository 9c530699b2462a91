// conv2d forward and backward against a naive double-precision convolution, backward also
// against central finite differences, over every convolution variant the models use.
#include "core/conv2d.h"

#include "core/blas.h"
#include <omp.h>
#include "test_util.h"

typedef struct {
  const char *name;
  conv2d_shape s;
  int B, H, W;
  int fd;  // small enough for finite differences
} conv_case;

// out (B, c_out, Ho, Wo) in double.
static void naive_forward(double *out, const float *in, const float *w, const float *bias,
                          const conv2d_shape *s, int B, int H, int W) {
  int ho = vqgpt_conv2d_out_h(s, H), wo = vqgpt_conv2d_out_w(s, W);
  for (int b = 0; b < B; b++)
    for (int co = 0; co < s->c_out; co++)
      for (int y = 0; y < ho; y++)
        for (int x = 0; x < wo; x++) {
          double acc = bias ? bias[co] : 0.0;
          for (int ci = 0; ci < s->c_in; ci++)
            for (int ki = 0; ki < s->k_h; ki++)
              for (int kj = 0; kj < s->k_w; kj++) {
                int iy = y * s->stride - s->pad_top + ki, ix = x * s->stride - s->pad_left + kj;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                acc += (double)in[(((size_t)b * s->c_in + ci) * H + iy) * W + ix] *
                       w[(((size_t)co * s->c_in + ci) * s->k_h + ki) * s->k_w + kj];
              }
          out[(((size_t)b * s->c_out + co) * ho + y) * wo + x] = acc;
        }
}

// The exact gradients of sum(out * g) in double.
static void naive_backward(double *din, double *dw, double *db, const float *g, const float *in,
                           const float *w, const conv2d_shape *s, int B, int H, int W) {
  int ho = vqgpt_conv2d_out_h(s, H), wo = vqgpt_conv2d_out_w(s, W);
  memset(din, 0, (size_t)B * s->c_in * H * W * sizeof *din);
  memset(dw, 0, (size_t)s->c_out * s->c_in * s->k_h * s->k_w * sizeof *dw);
  memset(db, 0, (size_t)s->c_out * sizeof *db);
  for (int b = 0; b < B; b++)
    for (int co = 0; co < s->c_out; co++)
      for (int y = 0; y < ho; y++)
        for (int x = 0; x < wo; x++) {
          double gv = g[(((size_t)b * s->c_out + co) * ho + y) * wo + x];
          db[co] += gv;
          for (int ci = 0; ci < s->c_in; ci++)
            for (int ki = 0; ki < s->k_h; ki++)
              for (int kj = 0; kj < s->k_w; kj++) {
                int iy = y * s->stride - s->pad_top + ki, ix = x * s->stride - s->pad_left + kj;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                size_t ii = (((size_t)b * s->c_in + ci) * H + iy) * W + ix;
                size_t wi = (((size_t)co * s->c_in + ci) * s->k_h + ki) * s->k_w + kj;
                din[ii] += gv * w[wi];
                dw[wi] += gv * in[ii];
              }
        }
}

typedef struct {
  const conv_case *c;
  float *in, *w, *bias, *g, *out, *scratch;
} loss_ctx;

// sum(conv(in) * g), summed in double.
static double conv_loss(void *p) {
  loss_ctx *l = p;
  const conv_case *c = l->c;
  vqgpt_conv2d_forward(l->out, l->in, l->w, l->bias, &c->s, c->B, c->H, c->W, l->scratch);
  size_t n =
      (size_t)c->B * c->s.c_out * vqgpt_conv2d_out_h(&c->s, c->H) * vqgpt_conv2d_out_w(&c->s, c->W);
  double acc = 0;
  for (size_t i = 0; i < n; i++) acc += (double)l->out[i] * l->g[i];
  return acc;
}

static void run_case(const conv_case *c, uint64_t *rng) {
  const conv2d_shape *s = &c->s;
  int ho = vqgpt_conv2d_out_h(s, c->H), wo = vqgpt_conv2d_out_w(s, c->W);
  size_t n_in = (size_t)c->B * s->c_in * c->H * c->W;
  size_t n_out = (size_t)c->B * s->c_out * ho * wo;
  size_t n_w = (size_t)s->c_out * s->c_in * s->k_h * s->k_w;
  float *in = alloc_f(n_in), *w = alloc_f(n_w), *bias = alloc_f(s->c_out);
  float *out = alloc_f(n_out), *g = alloc_f(n_out);
  float *scratch = alloc_f(vqgpt_conv2d_scratch_size(s, c->H, c->W));
  fill_uniform(in, n_in, rng, 1.0f);
  fill_uniform(w, n_w, rng, 0.5f);
  fill_uniform(bias, s->c_out, rng, 0.5f);
  fill_uniform(g, n_out, rng, 1.0f);

  // Forward, with and without bias.
  double *ref = malloc(n_out * sizeof *ref);
  for (int with_bias = 0; with_bias < 2; with_bias++) {
    const float *bp = with_bias ? bias : NULL;
    naive_forward(ref, in, w, bp, s, c->B, c->H, c->W);
    for (size_t i = 0; i < n_out; i++) out[i] = NAN;  // every output must be written
    vqgpt_conv2d_forward(out, in, w, bp, s, c->B, c->H, c->W, scratch);
    double e = rel_err_d(out, ref, n_out);
    CHECKF(e < 1e-5, "%s forward%s: relative error %.3g", c->name, with_bias ? "" : " (no bias)",
           e);
  }

  // Backward against the exact double gradients: din overwritten, dweight/dbias accumulated.
  double *rdin = malloc(n_in * sizeof *rdin), *rdw = malloc(n_w * sizeof *rdw);
  double *rdb = malloc(s->c_out * sizeof *rdb);
  naive_backward(rdin, rdw, rdb, g, in, w, s, c->B, c->H, c->W);
  float *din = alloc_f(n_in), *dw = alloc_f(n_w), *db = alloc_f(s->c_out);
  for (size_t i = 0; i < n_in; i++) din[i] = 1e6f;  // stale values must be overwritten
  for (size_t i = 0; i < n_w; i++) dw[i] = 0.0f;
  for (int i = 0; i < s->c_out; i++) db[i] = 0.0f;
  vqgpt_conv2d_backward(din, dw, db, g, in, w, s, c->B, c->H, c->W, scratch);
  double e_in = rel_err_d(din, rdin, n_in), e_w = rel_err_d(dw, rdw, n_w);
  double e_b = rel_err_d(db, rdb, s->c_out);
  CHECKF(e_in < 1e-5, "%s din: relative error %.3g", c->name, e_in);
  CHECKF(e_w < 1e-5, "%s dweight: relative error %.3g", c->name, e_w);
  CHECKF(e_b < 1e-5, "%s dbias: relative error %.3g", c->name, e_b);

  // Second call: parameter gradients now hold twice the gradient, din still once.
  vqgpt_conv2d_backward(din, dw, db, g, in, w, s, c->B, c->H, c->W, scratch);
  for (size_t i = 0; i < n_w; i++) rdw[i] *= 2;
  for (int i = 0; i < s->c_out; i++) rdb[i] *= 2;
  CHECKF(rel_err_d(din, rdin, n_in) < 1e-5, "%s din does not overwrite", c->name);
  CHECKF(rel_err_d(dw, rdw, n_w) < 1e-5, "%s dweight does not accumulate", c->name);
  CHECKF(rel_err_d(db, rdb, s->c_out) < 1e-5, "%s dbias does not accumulate", c->name);

  // Each gradient alone (others NULL) gives the same values.
  float *dw2 = alloc_f(n_w), *din2 = alloc_f(n_in);
  memset(dw2, 0, n_w * sizeof *dw2);
  vqgpt_conv2d_backward(NULL, dw2, NULL, g, in, w, s, c->B, c->H, c->W, scratch);
  for (size_t i = 0; i < n_w; i++) rdw[i] /= 2;
  CHECKF(rel_err_d(dw2, rdw, n_w) < 1e-5, "%s dweight alone", c->name);
  vqgpt_conv2d_backward(din2, NULL, NULL, g, in, w, s, c->B, c->H, c->W, scratch);
  CHECKF(rel_err_d(din2, rdin, n_in) < 1e-5, "%s din alone", c->name);

  if (c->fd) {
    // Central differences of the float implementation; the loss is linear in each input so
    // a large step adds no truncation error and keeps rounding small.
    memset(dw, 0, n_w * sizeof *dw);
    memset(db, 0, s->c_out * sizeof *db);
    vqgpt_conv2d_backward(din, dw, db, g, in, w, s, c->B, c->H, c->W, scratch);
    loss_ctx l = {c, in, w, bias, g, out, scratch};
    double fi = fd_check(conv_loss, &l, in, din, n_in, 97, 0.05f);
    double fw = fd_check(conv_loss, &l, w, dw, n_w, 97, 0.05f);
    double fb = fd_check(conv_loss, &l, bias, db, s->c_out, 97, 0.05f);
    CHECKF(fi < 1e-4, "%s din vs finite differences: %.3g", c->name, fi);
    CHECKF(fw < 1e-4, "%s dweight vs finite differences: %.3g", c->name, fw);
    CHECKF(fb < 1e-4, "%s dbias vs finite differences: %.3g", c->name, fb);
  }

  free(in), free(w), free(bias), free(out), free(g), free(scratch), free(ref);
  free(rdin), free(rdw), free(rdb), free(din), free(dw), free(db), free(dw2), free(din2);
}

// Scratch is sized when a model is built; a program may raise the OpenMP thread count later.
// The paths with per-thread scratch (Winograd, image-parallel, thin) must then stay within it
// (the sanitizer build checks) and compute the same.
static void threads_raised_after_sizing(uint64_t *rng) {
  const conv_case cases[] = {
      {"winograd", vqgpt_conv2d_same(16, 16, 3), 8, 20, 20, 0},
      {"image-parallel", {32, 8, 3, 3, 2, 0, 1, 0, 1}, 8, 20, 20, 0},
      {"thin", vqgpt_conv2d_same(16, 3, 3), 8, 20, 20, 0},
  };
  int before = omp_get_max_threads();
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const conv_case *c = &cases[i];
    const conv2d_shape *s = &c->s;
    size_t n_in = (size_t)c->B * s->c_in * c->H * c->W;
    size_t n_out =
        (size_t)c->B * s->c_out * vqgpt_conv2d_out_h(s, c->H) * vqgpt_conv2d_out_w(s, c->W);
    size_t n_w = (size_t)s->c_out * s->c_in * s->k_h * s->k_w;
    float *in = alloc_f(n_in), *w = alloc_f(n_w), *out = alloc_f(n_out), *out2 = alloc_f(n_out);
    float *din = alloc_f(n_in), *dw = alloc_f(n_w);
    float *scratch = alloc_f(vqgpt_conv2d_scratch_size(s, c->H, c->W));
    fill_uniform(in, n_in, rng, 1.0f);
    fill_uniform(w, n_w, rng, 0.5f);
    memset(dw, 0, n_w * sizeof *dw);
    vqgpt_conv2d_forward(out, in, w, NULL, s, c->B, c->H, c->W, scratch);
    omp_set_num_threads(4 * before);
    vqgpt_conv2d_forward(out2, in, w, NULL, s, c->B, c->H, c->W, scratch);
    vqgpt_conv2d_backward(din, dw, NULL, out, in, w, s, c->B, c->H, c->W, scratch);
    omp_set_num_threads(before);
    CHECKF(memcmp(out, out2, n_out * sizeof *out) == 0, "%s: more threads, other results", c->name);
    free(in), free(w), free(out), free(out2), free(din), free(dw), free(scratch);
  }
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  // Downsample's asymmetric padding: F.pad(x, (0, 1, 0, 1)) then a 3x3 stride-2 conv.
  conv2d_shape down = {5, 6, 3, 3, 2, 0, 1, 0, 1};
  conv2d_shape disc_s2 = {3, 8, 4, 4, 2, 1, 1, 1, 1};
  conv2d_shape disc_s1 = {7, 1, 4, 4, 1, 1, 1, 1, 1};
  conv2d_shape odd = {4, 3, 3, 2, 3, 2, 0, 1, 3};  // unequal kernel sides, stride 3
  // Convolutions take the shifted-sgemm path when c_in >= 32, the kernel is at least the
  // stride and the output has at least twice as many pixels as output channels, the im2col
  // path otherwise; batches of at least the thread count with outputs of at most 64x64 go
  // image-parallel (every small B = 2 case here when run on 2 threads), smaller batches of
  // small images share products in groups. All are covered, strided ones included.
  const conv_case cases[] = {
      {"3x3 same", vqgpt_conv2d_same(5, 7, 3), 2, 9, 13, 1},
      {"3x3 same, im2col path", vqgpt_conv2d_same(6, 40, 3), 2, 5, 7, 1},
      {"3x3 same 1x1 image", vqgpt_conv2d_same(3, 2, 3), 1, 1, 1, 1},
      {"1x1", vqgpt_conv2d_same(11, 6, 1), 2, 7, 5, 1},
      {"1x1 stride 2", {6, 5, 1, 1, 2, 0, 0, 0, 0}, 2, 7, 6, 1},
      {"downsample 3x3 s2 pad(0,1,0,1)", down, 2, 10, 8, 1},
      {"downsample odd size", down, 1, 9, 11, 1},
      {"downsample, shifted path", {32, 6, 3, 3, 2, 0, 1, 0, 1}, 2, 12, 10, 1},
      {"downsample odd size, shifted path", {33, 5, 3, 3, 2, 0, 1, 0, 1}, 1, 11, 13, 1},
      {"patchgan 4x4 s2 p1", disc_s2, 2, 16, 12, 1},
      {"patchgan 4x4 s2 p1, shifted path", {32, 4, 4, 4, 2, 1, 1, 1, 1}, 2, 14, 11, 1},
      {"3x3 stride 3 pad (1,2,0,2), shifted path", {32, 3, 3, 3, 3, 1, 2, 0, 2}, 1, 17, 14, 1},
      {"1x1 stride 2, c_in 32 (im2col path)", {32, 5, 1, 1, 2, 0, 0, 0, 0}, 1, 9, 8, 1},
      {"patchgan 4x4 s1 p1", disc_s1, 2, 7, 9, 1},
      {"patchgan 4x4 s1 p1, im2col path", {7, 33, 4, 4, 1, 1, 1, 1, 1}, 1, 6, 5, 1},
      {"3x2 kernel s3 asymmetric pad", odd, 2, 11, 10, 1},
      {"3x2 kernel s1 asymmetric pad", {4, 3, 3, 2, 1, 2, 0, 1, 3}, 2, 6, 9, 1},
      {"vgg 3x3, c_in 67", vqgpt_conv2d_same(67, 19, 3), 1, 12, 10, 0},
      // Wide enough that the work is split into several row tiles.
      {"3x3 shifted, row tiles", vqgpt_conv2d_same(32, 5, 3), 1, 30, 300, 0},
      // Outputs above 64x64 keep batches of 2 on the shifted path (smaller ones go
      // image-parallel): the weight gradient accumulates over the images.
      {"3x3 s2 shifted, batch 2", {32, 8, 3, 3, 2, 0, 1, 0, 1}, 2, 140, 130, 0},
      {"4x4 s1 shifted, batch 2", {32, 8, 4, 4, 1, 1, 1, 1, 1}, 2, 66, 66, 0},
      {"3x3 s2 shifted, row tiles", {32, 1, 3, 3, 2, 0, 1, 0, 1}, 1, 70, 500, 0},
      {"3x3 s2 im2col, row tiles", {16, 1, 3, 3, 2, 0, 1, 0, 1}, 1, 28, 2200, 0},
      // At most 4 output channels and stride 1 (conv_out to RGB, the logit layer): direct
      // loops; odd widths, a batch of 3, asymmetric padding, 1x1, and bands of rows.
      {"thin 3x3 to RGB", vqgpt_conv2d_same(16, 3, 3), 3, 20, 37, 1},
      {"conv_in from RGB, batch 8", vqgpt_conv2d_same(3, 32, 3), 8, 32, 32, 0},
      {"conv_out to RGB, batch 8", vqgpt_conv2d_same(32, 3, 3), 8, 32, 32, 0},
      {"thin 3x2 asymmetric pad", {8, 2, 3, 2, 1, 2, 0, 1, 1}, 2, 9, 11, 1},
      {"thin 1x1", vqgpt_conv2d_same(9, 2, 1), 2, 5, 6, 1},
      {"thin 3x3 in bands of rows", vqgpt_conv2d_same(64, 4, 3), 1, 13, 1500, 0},
      // Small images on the im2col path share one product per group of images; here the
      // column budget takes two images at a time, so 3 images run as a group of 2 and 1.
      {"3x3 im2col, images in groups", vqgpt_conv2d_same(16, 8, 3), 3, 80, 80, 0},
      // Winograd F(4x4, 3x3): 3x3 stride-1 same convolutions with >= 16 channels and >= 256
      // pixels; partial tiles at the right and bottom edges, a single tile row, one image
      // split into blocks of rows for both threads, and rows so wide that a block is part of
      // a tile row.
      {"3x3 winograd, sides not multiples of 4", vqgpt_conv2d_same(16, 24, 3), 2, 18, 22, 1},
      {"3x3 winograd, one tile row", vqgpt_conv2d_same(20, 16, 3), 3, 4, 64, 1},
      {"3x3 winograd, batch 1 in row blocks", vqgpt_conv2d_same(16, 17, 3), 1, 41, 37, 1},
      {"3x3 winograd, blocks within a tile row", vqgpt_conv2d_same(16, 16, 3), 1, 5, 1902, 0},
  };
  uint64_t rng = 12345;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], &rng);

  // Output sizes of the variants.
  CHECK(vqgpt_conv2d_out_h(&down, 256) == 128 && vqgpt_conv2d_out_w(&down, 255) == 127);
  CHECK(vqgpt_conv2d_out_h(&disc_s2, 32) == 16 && vqgpt_conv2d_out_h(&disc_s1, 8) == 7);
  conv2d_shape same3 = vqgpt_conv2d_same(128, 128, 3);
  CHECK(vqgpt_conv2d_out_h(&same3, 37) == 37 && vqgpt_conv2d_out_w(&same3, 64) == 64);
  // Scratch stays bounded for a 512x1024 image at 128 and 512 channels.
  CHECK(vqgpt_conv2d_scratch_size(&same3, 512, 1024) * sizeof(float) <= ((size_t)64 << 20));
  conv2d_shape same256 = vqgpt_conv2d_same(256, 256, 3);  // the largest Winograd takes
  CHECK(vqgpt_conv2d_scratch_size(&same256, 512, 1024) * sizeof(float) <= ((size_t)64 << 20));
  conv2d_shape same512 = vqgpt_conv2d_same(512, 512, 3);
  CHECK(vqgpt_conv2d_scratch_size(&same512, 512, 1024) * sizeof(float) <= ((size_t)64 << 20));
  conv2d_shape pw = vqgpt_conv2d_same(128, 128, 1);
  CHECK(vqgpt_conv2d_scratch_size(&pw, 512, 1024) * sizeof(float) <= ((size_t)64 << 20));
  conv2d_shape down128 = {128, 128, 3, 3, 2, 0, 1, 0, 1}, down512 = {512, 512, 3, 3, 2, 0, 1, 0, 1};
  conv2d_shape disc512 = {256, 512, 4, 4, 1, 1, 1, 1, 1}, conv_out = vqgpt_conv2d_same(128, 3, 3);
  CHECK(vqgpt_conv2d_scratch_size(&down128, 512, 1024) * sizeof(float) <= ((size_t)64 << 20));
  CHECK(vqgpt_conv2d_scratch_size(&down512, 512, 1024) * sizeof(float) <= ((size_t)64 << 20));
  CHECK(vqgpt_conv2d_scratch_size(&disc512, 512, 1024) * sizeof(float) <= ((size_t)64 << 20));
  CHECK(vqgpt_conv2d_scratch_size(&conv_out, 512, 1024) * sizeof(float) <= ((size_t)64 << 20));
  threads_raised_after_sizing(&rng);
  return test_finish("test_conv2d");
}
