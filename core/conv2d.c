#include "core/conv2d.h"

#include <omp.h>
#include <string.h>

#include "core/blas.h"
#include "core/conv2d_thin.h"
#include "core/parallel.h"
#include "core/winograd.h"

// Two lowerings to sgemm:
// - "shifted" (images with more pixels than output channels): the input tile is zero padded
//   once into rows of width Wq; every kernel tap is then one sgemm
//   (c_out x c_in) x (c_in x R*Wq) reading that buffer at the tap's constant offset,
//   accumulating into a "wide" output with Wq columns per row, of which the ones past Wo are
//   dropped. No patch matrix at all; measured fastest for the VQGAN's big convs. At stride
//   s > 1 the padded input is split into s*s phases (padded row y*s+a, column x*s+b go to
//   phase (a, b) at (y, x)), so that tap (ki, kj) reads phase (ki%s, kj%s) at the constant
//   offset (ki/s, kj/s): the same scheme at Wq = ceil(Wp/s).
// - im2col (thin inputs, small images where repacking the weights per tap would cost more
//   than copying patches, kernels smaller than the stride): one sgemm per tile with
//   K = c_in * k_h * k_w.
// Both tile over output rows so that scratch stays bounded for any image size.

// Floats of im2col columns per tile. Large enough that each sgemm has thousands of columns
// (OpenBLAS needs that to reach full speed), small enough to stay far below the 64 MB
// scratch budget for any image size; at least one output row is always taken.
#define CONV_COLS_BUDGET ((size_t)1 << 21)
// sgemm columns per tile of the shifted path (about 8K measured best at 128-256 channels),
// and a bound on its padded-input plus wide-output floats.
#define CONV_SHIFT_COLS 8192
#define CONV_SHIFT_BUDGET ((size_t)1 << 22)

conv2d_shape vqgpt_conv2d_same(int c_in, int c_out, int k) {
  conv2d_shape s = {c_in, c_out, k, k, 1, k / 2, k / 2, k / 2, k / 2};
  return s;
}

int vqgpt_conv2d_out_h(const conv2d_shape *s, int h) {
  return (h + s->pad_top + s->pad_bottom - s->k_h) / s->stride + 1;
}

int vqgpt_conv2d_out_w(const conv2d_shape *s, int w) {
  return (w + s->pad_left + s->pad_right - s->k_w) / s->stride + 1;
}

// 1x1 stride-1 unpadded convolutions are a plain matrix product on the input itself.
static int conv2d_is_pointwise(const conv2d_shape *s) {
  return s->k_h == 1 && s->k_w == 1 && s->stride == 1 && s->pad_top == 0 && s->pad_bottom == 0 &&
         s->pad_left == 0 && s->pad_right == 0;
}

static size_t conv2d_kdim(const conv2d_shape *s) { return (size_t)s->c_in * s->k_h * s->k_w; }
static size_t conv2d_taps(const conv2d_shape *s) { return (size_t)s->k_h * s->k_w; }

// Few input channels make each tap's sgemm too thin (K = c_in) to beat one im2col sgemm.
static int conv2d_use_shifted(const conv2d_shape *s, int ho, int wo) {
  return !conv2d_is_pointwise(s) && s->k_h >= s->stride && s->k_w >= s->stride && s->c_in >= 32 &&
         (size_t)ho * wo >= 2 * (size_t)s->c_out;
}

// Output rows per im2col tile.
static int conv2d_tile_rows(const conv2d_shape *s, int ho, int wo) {
  size_t per_row = conv2d_kdim(s) * (size_t)wo;
  size_t rows = per_row ? CONV_COLS_BUDGET / per_row : (size_t)ho;
  if (rows < 1) rows = 1;
  if (rows > (size_t)ho) rows = (size_t)ho;
  return (int)rows;
}

// The image-parallel im2col path: for small images (at most this many output pixels) each
// thread takes whole images, with its own patches, single-threaded sgemm and share of the
// weight gradient, so the cores never meet inside a product (at 8x8 that halves the time of
// a 256-channel convolution). Its per-thread scratch is bounded by the second constant.
#define CONV_PAR_MAX_PIXELS 4096
#define CONV_PAR_BUDGET ((size_t)1 << 23)

// Floats one thread of the image-parallel path needs: one image's patches and a weight
// gradient.
static size_t conv2d_image_floats(const conv2d_shape *s, int ho, int wo) {
  return conv2d_kdim(s) * ((size_t)ho * wo + (size_t)s->c_out);
}
static bool conv2d_images_fit(const conv2d_shape *s, int ho, int wo, int nt) {
  return nt >= 2 && (size_t)ho * wo <= CONV_PAR_MAX_PIXELS &&
         (size_t)nt * conv2d_image_floats(s, ho, wo) <= CONV_PAR_BUDGET;
}
// Threads for the image-parallel path at batch B, 0 when it is not taken. Whether the path
// exists is decided as when the scratch was sized.
static int conv2d_image_threads(const conv2d_shape *s, int ho, int wo, int B) {
  int nt = vqgpt_team_threads();
  return nt >= 2 && B >= nt && conv2d_images_fit(s, ho, wo, vqgpt_scratch_threads()) ? nt : 0;
}

// Images per sgemm on the im2col path. Small images are batched so that one product has
// enough columns for sgemm to run at speed and the cores meet in it once per group rather
// than once per image; a group's patches and its product (c_out, g*Ho*Wo) share the column
// budget. Groups are balanced (4 images in groups of 3 become 2 + 2).
static int conv2d_max_group(const conv2d_shape *s, int ho, int wo) {
  size_t per_image = (conv2d_kdim(s) + (size_t)s->c_out) * (size_t)ho * wo;
  return (int)(CONV_COLS_BUDGET / per_image);
}
static int conv2d_group(const conv2d_shape *s, int ho, int wo, int B) {
  int g = conv2d_max_group(s, ho, wo);
  if (g < 2 || B < 2) return 1;
  if (g > B) g = B;
  int groups = (B + g - 1) / g;
  return (B + groups - 1) / groups;
}

// Geometry of the shifted path.
typedef struct {
  int wq;       // row width of a phase (the padded width at stride 1)
  int rows;     // output rows per tile (the last tile may have fewer)
  int qrows;    // rows of a phase in a tile: rows + (k_h - 1) / stride
  size_t qlen;  // floats of one phase of one channel: qrows * wq
  size_t plen;  // floats of one channel of the padded tile: stride^2 * qlen
  size_t wlen;  // floats of one channel of the wide output: rows * wq
} conv2d_shift_plan;

static conv2d_shift_plan conv2d_shift_geometry(const conv2d_shape *s, int ho, int W) {
  conv2d_shift_plan p;
  int st = s->stride, wp = W + s->pad_left + s->pad_right, extra = (s->k_h - 1) / st;
  p.wq = (wp + st - 1) / st;
  int rows = (CONV_SHIFT_COLS + p.wq - 1) / p.wq;
  size_t pad_row = (size_t)s->c_in * st * st * p.wq, wide_row = (size_t)s->c_out * p.wq;
  while (rows > 1 && pad_row * (rows + extra) + wide_row * rows > CONV_SHIFT_BUDGET) rows--;
  if (rows > ho) rows = ho;
  p.rows = rows;
  p.qrows = rows + extra;
  p.qlen = (size_t)p.qrows * p.wq;
  p.plen = (size_t)st * st * p.qlen;
  p.wlen = (size_t)rows * p.wq;
  return p;
}

static bool conv2d_use_winograd(const conv2d_shape *s, int h, int w) {
  return vqgpt_winograd_applies(s->c_in, s->c_out, s->k_h, s->k_w, s->stride, s->pad_top,
                                s->pad_bottom, s->pad_left, s->pad_right, h, w);
}

size_t vqgpt_conv2d_scratch_size(const conv2d_shape *s, int h, int w) {
  if (vqgpt_conv2d_thin_applies(s)) return vqgpt_conv2d_thin_scratch_size(s, h, w);
  if (conv2d_use_winograd(s, h, w)) return vqgpt_winograd_scratch_size(s->c_in, s->c_out, h, w);
  int ho = vqgpt_conv2d_out_h(s, h), wo = vqgpt_conv2d_out_w(s, w);
  size_t need;
  if (conv2d_is_pointwise(s)) {
    need = 0;
  } else if (conv2d_use_shifted(s, ho, wo)) {
    // Forward: tap-major weights, padded input, wide output. Backward adds the tap-major
    // weight gradient and the padded input gradient.
    conv2d_shift_plan p = conv2d_shift_geometry(s, ho, w);
    size_t wt = conv2d_taps(s) * s->c_out * s->c_in;
    need = 2 * wt + 2 * (size_t)s->c_in * p.plen + (size_t)s->c_out * p.wlen;
  } else {
    need = conv2d_kdim(s) * (size_t)wo * (size_t)conv2d_tile_rows(s, ho, wo);
    if (conv2d_max_group(s, ho, wo) >= 2 && need < CONV_COLS_BUDGET) need = CONV_COLS_BUDGET;
  }
  // Batches of at least the thread count may take the image-parallel path instead.
  int nt = vqgpt_scratch_threads();
  if (conv2d_images_fit(s, ho, wo, nt) && need < (size_t)nt * conv2d_image_floats(s, ho, wo))
    need = (size_t)nt * conv2d_image_floats(s, ho, wo);
  return need;
}

// How a convolution that is neither Winograd nor thin is lowered at batch B, in order of
// preference; small outputs go image-parallel even where the shifted or 1x1 path would apply
// (measured 1.4-1.7x faster for the strided 3x3 and 4x4 convolutions at 64x64 and below, and
// the attention's 1x1 projections at 8x8 no longer meet in sgemm once per image).
typedef enum { PATH_POINTWISE, PATH_IMAGES, PATH_SHIFTED, PATH_GROUPED, PATH_IM2COL } conv2d_path;

static conv2d_path conv2d_choose(const conv2d_shape *s, int ho, int wo, int B, int *threads,
                                 int *group) {
  *threads = *group = 1;
  if ((*threads = conv2d_image_threads(s, ho, wo, B)) > 0) return PATH_IMAGES;
  if (conv2d_is_pointwise(s)) return PATH_POINTWISE;
  if (conv2d_use_shifted(s, ho, wo)) return PATH_SHIFTED;
  return (*group = conv2d_group(s, ho, wo, B)) > 1 ? PATH_GROUPED : PATH_IM2COL;
}

// floor(a / b) for b > 0 and any sign of a.
static int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Output columns [lo, hi) whose input column ow*stride + off lies inside [0, W).
static void conv2d_valid_cols(int off, int stride, int W, int wo, int *lo, int *hi) {
  int l = off >= 0 ? 0 : floor_div(-off + stride - 1, stride);
  int h = floor_div(W - 1 - off, stride) + 1;
  if (h > wo) h = wo;
  if (h < 0) h = 0;
  if (l > h) l = h;
  *lo = l;
  *hi = h;
}

// d[x] = row[x*st + off] for x in [lo, hi), zero for the rest of [0, n): one output row of
// a patch, with the padding columns on either side.
static void conv2d_gather_row(float *d, const float *row, int st, int off, int lo, int hi, int n) {
  for (int x = 0; x < lo; x++) d[x] = 0;
  if (st == 1)
    memcpy(d + lo, row + lo + off, (size_t)(hi - lo) * sizeof *d);
  else if (st == 2)  // a constant stride lets the compiler vectorize the gather
    for (int x = lo; x < hi; x++) d[x] = row[2 * x + off];
  else
    for (int x = lo; x < hi; x++) d[x] = row[x * st + off];
  for (int x = hi; x < n; x++) d[x] = 0;
}

// cols (c_in*k_h*k_w, (r1-r0)*Wo) with row stride ld: the input patches of output rows
// [r0, r1), zero padded, rows ordered like the weight's (c_in, k_h, k_w).
static void conv2d_im2col(float *cols, size_t ld, const float *in, const conv2d_shape *s, int H,
                          int W, int wo, int r0, int r1) {
  size_t ncols = (size_t)(r1 - r0) * wo;
  int kh = s->k_h, kw = s->k_w, st = s->stride;
#pragma omp parallel for schedule(static) if (conv2d_kdim(s) * ncols >= 65536)
  for (int ci = 0; ci < s->c_in; ci++) {
    const float *plane = in + (size_t)ci * H * W;  // (H, W)
    for (int ki = 0; ki < kh; ki++)
      for (int kj = 0; kj < kw; kj++) {
        float *dst = cols + (((size_t)ci * kh + ki) * kw + kj) * ld;
        int off = kj - s->pad_left, lo, hi;
        conv2d_valid_cols(off, st, W, wo, &lo, &hi);
        for (int oh = r0; oh < r1; oh++) {
          float *d = dst + (size_t)(oh - r0) * wo;
          int ih = oh * st - s->pad_top + ki;
          if (ih < 0 || ih >= H) {
            memset(d, 0, (size_t)wo * sizeof *d);
            continue;
          }
          conv2d_gather_row(d, plane + (size_t)ih * W, st, off, lo, hi, wo);
        }
      }
  }
}

// din += col2im(cols): the adjoint of conv2d_im2col.
static void conv2d_col2im(float *din, const float *cols, size_t ld, const conv2d_shape *s, int H,
                          int W, int wo, int r0, int r1) {
  size_t ncols = (size_t)(r1 - r0) * wo;
  int kh = s->k_h, kw = s->k_w, st = s->stride;
  // Parallel over input channels: each thread owns whole planes of din.
#pragma omp parallel for schedule(static) if (conv2d_kdim(s) * ncols >= 65536)
  for (int ci = 0; ci < s->c_in; ci++) {
    float *plane = din + (size_t)ci * H * W;  // (H, W)
    for (int ki = 0; ki < kh; ki++)
      for (int kj = 0; kj < kw; kj++) {
        const float *src = cols + (((size_t)ci * kh + ki) * kw + kj) * ld;
        int off = kj - s->pad_left, lo, hi;
        conv2d_valid_cols(off, st, W, wo, &lo, &hi);
        for (int oh = r0; oh < r1; oh++) {
          int ih = oh * st - s->pad_top + ki;
          if (ih < 0 || ih >= H) continue;
          const float *c = src + (size_t)(oh - r0) * wo;
          float *d = plane + (size_t)ih * W;  // input row; column x*st + off
          if (st == 1)                        // constant strides let the compiler vectorize
            for (int x = lo; x < hi; x++) d[x + off] += c[x];
          else if (st == 2)
            for (int x = lo; x < hi; x++) d[2 * x + off] += c[x];
          else
            for (int x = lo; x < hi; x++) d[x * st + off] += c[x];
        }
      }
  }
}

// Each output row block starts as the bias so that sgemm can accumulate with beta = 1
// (OpenBLAS clears C in a separate pass when beta = 0, so this costs nothing extra).
static void conv2d_fill_bias(float *out, const float *bias, int c_out, size_t ld, size_t n) {
#pragma omp parallel for schedule(static) if ((size_t)c_out * n >= 65536)
  for (int co = 0; co < c_out; co++) {
    float *o = out + (size_t)co * ld;
    float v = bias ? bias[co] : 0.0f;
    for (size_t i = 0; i < n; i++) o[i] = v;
  }
}

// wt (k_h*k_w, c_out, c_in) from weight (c_out, c_in, k_h, k_w): one sgemm operand per tap.
static void conv2d_weight_by_tap(float *wt, const float *weight, const conv2d_shape *s) {
  size_t taps = conv2d_taps(s), cc = (size_t)s->c_out * s->c_in;
#pragma omp parallel for schedule(static) if (cc * taps >= 65536)
  for (int co = 0; co < s->c_out; co++)
    for (int ci = 0; ci < s->c_in; ci++) {
      const float *w = weight + ((size_t)co * s->c_in + ci) * taps;
      for (size_t t = 0; t < taps; t++) wt[t * cc + (size_t)co * s->c_in + ci] = w[t];
    }
}

// pad (c_in, stride^2 phases, qrows, wq): the zero-padded input that output rows
// [r0, r0 + rows) read, split into phases.
static void conv2d_pad_tile(float *pad, const float *in, const conv2d_shape *s,
                            const conv2d_shift_plan *p, int H, int W, int r0) {
  int st = s->stride, wq = p->wq;
#pragma omp parallel for schedule(static) if ((size_t)s->c_in * p->plen >= 65536)
  for (int ci = 0; ci < s->c_in; ci++) {
    const float *src = in + (size_t)ci * H * W;  // (H, W)
    for (int a = 0; a < st; a++)
      for (int b = 0; b < st; b++) {
        float *dst = pad + (size_t)ci * p->plen + (size_t)(a * st + b) * p->qlen;  // (qrows, wq)
        // Phase column x holds input column x*st + b - pad_left; valid for x in [lo, hi).
        int off = b - s->pad_left, lo, hi;
        conv2d_valid_cols(off, st, W, wq, &lo, &hi);
        for (int y = 0; y < p->qrows; y++) {
          float *d = dst + (size_t)y * wq;
          int ih = (r0 + y) * st + a - s->pad_top;
          if (ih < 0 || ih >= H) {
            memset(d, 0, (size_t)wq * sizeof *d);
            continue;
          }
          conv2d_gather_row(d, src + (size_t)ih * W, st, off, lo, hi, wq);
        }
      }
  }
}

// Where tap t = (ki, kj) starts reading in a padded channel: its phase, then its shift. The
// sgemm width of a tile leaves out the last row's columns that only garbage outputs need,
// so that no tap reads past the tile.
static size_t conv2d_tap_offset(const conv2d_shift_plan *p, const conv2d_shape *s, size_t t) {
  size_t ki = t / s->k_w, kj = t % s->k_w, st = s->stride;
  return ((ki % st) * st + kj % st) * p->qlen + (ki / st) * p->wq + kj / st;
}
static int conv2d_shift_cols(const conv2d_shift_plan *p, const conv2d_shape *s, int rows) {
  return rows * p->wq - (s->k_w - 1) / s->stride;
}

static void conv2d_forward_shifted(float *out, const float *in, const float *bias,
                                   const conv2d_shape *s, int H, int W, int ho, int wo,
                                   const float *wt, float *scratch) {
  conv2d_shift_plan p = conv2d_shift_geometry(s, ho, W);
  float *pad = scratch;                          // (c_in, plen)
  float *wide = pad + (size_t)s->c_in * p.plen;  // (c_out, n) for this tile's n
  size_t taps = conv2d_taps(s), cc = (size_t)s->c_out * s->c_in;
  for (int r0 = 0; r0 < ho; r0 += p.rows) {
    int rows = r0 + p.rows <= ho ? p.rows : ho - r0;
    int n = conv2d_shift_cols(&p, s, rows);
    conv2d_pad_tile(pad, in, s, &p, H, W, r0);
    for (size_t t = 0; t < taps; t++)
      vqgpt_sgemm(false, false, s->c_out, n, s->c_in, 1.0f, wt + t * cc, s->c_in,
                  pad + conv2d_tap_offset(&p, s, t), (int)p.plen, t ? 1.0f : 0.0f, wide, n);
#pragma omp parallel for schedule(static) if ((size_t)s->c_out * n >= 65536)
    for (int co = 0; co < s->c_out; co++) {
      float b = bias ? bias[co] : 0.0f;
      for (int y = 0; y < rows; y++) {
        const float *w = wide + (size_t)co * n + (size_t)y * p.wq;
        float *o = out + ((size_t)co * ho + r0 + y) * wo;
        for (int x = 0; x < wo; x++) o[x] = w[x] + b;
      }
    }
  }
}

// One image (c_in, H, W) -> (c_out, Ho, Wo) on the 1x1 path (a plain product on the input)
// or the im2col path (in row tiles, scratch of conv2d_kdim * Wo * conv2d_tile_rows floats).
static void conv2d_forward_image(float *out, const float *in, const float *weight,
                                 const float *bias, const conv2d_shape *s, int H, int W,
                                 float *scratch) {
  int ho = vqgpt_conv2d_out_h(s, H), wo = vqgpt_conv2d_out_w(s, W), kdim = (int)conv2d_kdim(s);
  size_t in_plane = (size_t)H * W, out_plane = (size_t)ho * wo;
  if (conv2d_is_pointwise(s)) {
    conv2d_fill_bias(out, bias, s->c_out, out_plane, out_plane);
    vqgpt_sgemm(false, false, s->c_out, (int)out_plane, s->c_in, 1.0f, weight, s->c_in, in,
                (int)in_plane, 1.0f, out, (int)out_plane);
    return;
  }
  int rows = conv2d_tile_rows(s, ho, wo);
  for (int r0 = 0; r0 < ho; r0 += rows) {
    int r1 = r0 + rows < ho ? r0 + rows : ho;
    int ncols = (r1 - r0) * wo;
    float *cols = scratch;  // (kdim, ncols)
    conv2d_im2col(cols, (size_t)ncols, in, s, H, W, wo, r0, r1);
    float *o = out + (size_t)r0 * wo;  // (c_out, ncols) with row stride Ho*Wo
    conv2d_fill_bias(o, bias, s->c_out, out_plane, (size_t)ncols);
    vqgpt_sgemm(false, false, s->c_out, ncols, kdim, 1.0f, weight, kdim, cols, ncols, 1.0f, o,
                (int)out_plane);
  }
}

// The backward of conv2d_forward_image: din (may be NULL) overwritten, dweight (may be NULL)
// accumulated.
static void conv2d_backward_image(float *din, float *dweight, const float *dout, const float *in,
                                  const float *weight, const conv2d_shape *s, int H, int W,
                                  float *scratch) {
  int ho = vqgpt_conv2d_out_h(s, H), wo = vqgpt_conv2d_out_w(s, W), kdim = (int)conv2d_kdim(s);
  size_t in_plane = (size_t)H * W, out_plane = (size_t)ho * wo;
  if (conv2d_is_pointwise(s)) {
    if (dweight)
      vqgpt_sgemm(false, true, s->c_out, s->c_in, (int)out_plane, 1.0f, dout, (int)out_plane, in,
                  (int)in_plane, 1.0f, dweight, s->c_in);
    if (din)
      vqgpt_sgemm(true, false, s->c_in, (int)in_plane, s->c_out, 1.0f, weight, s->c_in, dout,
                  (int)out_plane, 0.0f, din, (int)in_plane);
    return;
  }
  if (din) memset(din, 0, (size_t)s->c_in * in_plane * sizeof *din);
  int rows = conv2d_tile_rows(s, ho, wo);
  for (int r0 = 0; r0 < ho; r0 += rows) {
    int r1 = r0 + rows < ho ? r0 + rows : ho;
    int ncols = (r1 - r0) * wo;
    float *cols = scratch;                    // (kdim, ncols)
    const float *d = dout + (size_t)r0 * wo;  // (c_out, ncols) with row stride Ho*Wo
    if (dweight) {
      conv2d_im2col(cols, (size_t)ncols, in, s, H, W, wo, r0, r1);
      vqgpt_sgemm(false, true, s->c_out, kdim, ncols, 1.0f, d, (int)out_plane, cols, ncols, 1.0f,
                  dweight, kdim);
    }
    if (din) {
      vqgpt_sgemm(true, false, kdim, ncols, s->c_out, 1.0f, weight, kdim, d, (int)out_plane, 0.0f,
                  cols, ncols);
      conv2d_col2im(din, cols, (size_t)ncols, s, H, W, wo, r0, r1);
    }
  }
}

// conv2d_forward_image with nt threads each taking whole images and its own scratch.
static void conv2d_forward_images(float *out, const float *in, const float *weight,
                                  const float *bias, const conv2d_shape *s, int B, int H, int W,
                                  int nt, float *scratch) {
  int ho = vqgpt_conv2d_out_h(s, H), wo = vqgpt_conv2d_out_w(s, W);
  size_t P = (size_t)ho * wo, in_plane = (size_t)H * W, per = conv2d_image_floats(s, ho, wo);
#pragma omp parallel num_threads(nt)
  {
    float *cols = scratch + (size_t)omp_get_thread_num() * per;
#pragma omp for schedule(static)
    for (int b = 0; b < B; b++)
      conv2d_forward_image(out + (size_t)b * s->c_out * P, in + (size_t)b * s->c_in * in_plane,
                           weight, bias, s, H, W, cols);
  }
}

// conv2d_backward_image likewise, each thread's weight gradient in its own share (after its
// patches), the shares summed at the end.
static void conv2d_backward_images(float *din, float *dweight, const float *dout, const float *in,
                                   const float *weight, const conv2d_shape *s, int B, int H, int W,
                                   int nt, float *scratch) {
  int ho = vqgpt_conv2d_out_h(s, H), wo = vqgpt_conv2d_out_w(s, W);
  size_t P = (size_t)ho * wo, in_plane = (size_t)H * W, per = conv2d_image_floats(s, ho, wo);
  size_t cols_floats = conv2d_kdim(s) * P, nw = (size_t)s->c_out * conv2d_kdim(s);
  int n_shares = 1;
#pragma omp parallel num_threads(nt)
  {
#pragma omp single
    n_shares = omp_get_num_threads();
    float *cols = scratch + (size_t)omp_get_thread_num() * per;  // (kdim, P) at the most
    float *share = cols + cols_floats;                           // (c_out, kdim)
    if (dweight) memset(share, 0, nw * sizeof *share);
#pragma omp for schedule(static)
    for (int b = 0; b < B; b++)
      conv2d_backward_image(din ? din + (size_t)b * s->c_in * in_plane : NULL,
                            dweight ? share : NULL, dout + (size_t)b * s->c_out * P,
                            in + (size_t)b * s->c_in * in_plane, weight, s, H, W, cols);
  }
  if (dweight) vqgpt_sum_shares(dweight, true, scratch + cols_floats, per, n_shares, nw);
}

// The im2col path for groups of g whole images: one product per group.
static void conv2d_forward_grouped(float *out, const float *in, const float *weight,
                                   const float *bias, const conv2d_shape *s, int B, int H, int W,
                                   int g, float *scratch) {
  int ho = vqgpt_conv2d_out_h(s, H), wo = vqgpt_conv2d_out_w(s, W), kdim = (int)conv2d_kdim(s);
  size_t P = (size_t)ho * wo, in_plane = (size_t)H * W;
  for (int b0 = 0; b0 < B; b0 += g) {
    int nb = B - b0 < g ? B - b0 : g;
    size_t n = (size_t)nb * P;
    float *cols = scratch, *prod = scratch + (size_t)kdim * n;  // (kdim, n), (c_out, n)
    for (int i = 0; i < nb; i++)
      conv2d_im2col(cols + i * P, n, in + (size_t)(b0 + i) * s->c_in * in_plane, s, H, W, wo, 0,
                    ho);
    vqgpt_sgemm(false, false, s->c_out, (int)n, kdim, 1.0f, weight, kdim, cols, (int)n, 0.0f, prod,
                (int)n);
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)s->c_out * n >= 65536)
    for (int i = 0; i < nb; i++)
      for (int co = 0; co < s->c_out; co++) {
        const float *src = prod + (size_t)co * n + i * P;
        float *dst = out + ((size_t)(b0 + i) * s->c_out + co) * P, bv = bias ? bias[co] : 0.0f;
        for (size_t q = 0; q < P; q++) dst[q] = src[q] + bv;
      }
  }
}

static void conv2d_backward_grouped(float *din, float *dweight, const float *dout, const float *in,
                                    const float *weight, const conv2d_shape *s, int B, int H, int W,
                                    int g, float *scratch) {
  int ho = vqgpt_conv2d_out_h(s, H), wo = vqgpt_conv2d_out_w(s, W), kdim = (int)conv2d_kdim(s);
  size_t P = (size_t)ho * wo, in_plane = (size_t)H * W;
  for (int b0 = 0; b0 < B; b0 += g) {
    int nb = B - b0 < g ? B - b0 : g;
    size_t n = (size_t)nb * P;
    float *dcat = scratch, *cols = scratch + (size_t)s->c_out * n;  // (c_out, n), (kdim, n)
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)s->c_out * n >= 65536)
    for (int i = 0; i < nb; i++)
      for (int co = 0; co < s->c_out; co++)
        memcpy(dcat + (size_t)co * n + i * P, dout + ((size_t)(b0 + i) * s->c_out + co) * P,
               P * sizeof *dcat);
    if (dweight) {
      for (int i = 0; i < nb; i++)
        conv2d_im2col(cols + i * P, n, in + (size_t)(b0 + i) * s->c_in * in_plane, s, H, W, wo, 0,
                      ho);
      vqgpt_sgemm(false, true, s->c_out, kdim, (int)n, 1.0f, dcat, (int)n, cols, (int)n, 1.0f,
                  dweight, kdim);
    }
    if (din) {
      vqgpt_sgemm(true, false, kdim, (int)n, s->c_out, 1.0f, weight, kdim, dcat, (int)n, 0.0f, cols,
                  (int)n);
      for (int i = 0; i < nb; i++) {
        float *d = din + (size_t)(b0 + i) * s->c_in * in_plane;
        memset(d, 0, (size_t)s->c_in * in_plane * sizeof *d);
        conv2d_col2im(d, cols + i * P, n, s, H, W, wo, 0, ho);
      }
    }
  }
}

void vqgpt_conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                          const conv2d_shape *s, int B, int H, int W, float *scratch) {
  if (vqgpt_conv2d_thin_applies(s)) {
    vqgpt_conv2d_thin_forward(out, in, weight, bias, s, B, H, W, scratch);
    return;
  }
  if (conv2d_use_winograd(s, H, W)) {
    vqgpt_winograd_forward(out, in, weight, bias, s->c_in, s->c_out, B, H, W, scratch);
    return;
  }
  int ho = vqgpt_conv2d_out_h(s, H), wo = vqgpt_conv2d_out_w(s, W);
  size_t in_plane = (size_t)H * W, out_plane = (size_t)ho * wo;
  int nt, group;
  conv2d_path path = conv2d_choose(s, ho, wo, B, &nt, &group);
  if (path == PATH_IMAGES) {
    conv2d_forward_images(out, in, weight, bias, s, B, H, W, nt, scratch);
    return;
  }
  if (path == PATH_GROUPED) {
    conv2d_forward_grouped(out, in, weight, bias, s, B, H, W, group, scratch);
    return;
  }
  bool shifted = path == PATH_SHIFTED;
  float *wt = scratch;  // (k_h*k_w, c_out, c_in) on the shifted path
  if (shifted) conv2d_weight_by_tap(wt, weight, s);
  for (int b = 0; b < B; b++) {
    const float *inb = in + (size_t)b * s->c_in * in_plane;  // (c_in, H, W)
    float *outb = out + (size_t)b * s->c_out * out_plane;    // (c_out, Ho, Wo)
    if (shifted)
      conv2d_forward_shifted(outb, inb, bias, s, H, W, ho, wo, wt,
                             scratch + conv2d_taps(s) * s->c_out * s->c_in);
    else
      conv2d_forward_image(outb, inb, weight, bias, s, H, W, scratch);
  }
}

// Shifted backward for one sample. dwt (taps, c_out, c_in) accumulates the weight gradient
// tap-major; din (c_in, H, W) must be zero on entry and receives the input gradient.
static void conv2d_backward_shifted(float *din, float *dwt, const float *dout, const float *in,
                                    const conv2d_shape *s, int H, int W, int ho, int wo,
                                    const float *wt, float *scratch) {
  conv2d_shift_plan p = conv2d_shift_geometry(s, ho, W);
  float *pad = scratch;                            // (c_in, plen)
  float *dpad = pad + (size_t)s->c_in * p.plen;    // (c_in, plen)
  float *dwide = dpad + (size_t)s->c_in * p.plen;  // (c_out, n)
  size_t taps = conv2d_taps(s), cc = (size_t)s->c_out * s->c_in;
  for (int r0 = 0; r0 < ho; r0 += p.rows) {
    int rows = r0 + p.rows <= ho ? p.rows : ho - r0;
    int n = conv2d_shift_cols(&p, s, rows);
    // dout in the wide layout; the dropped columns must be zero so they contribute nothing.
#pragma omp parallel for schedule(static) if ((size_t)s->c_out * n >= 65536)
    for (int co = 0; co < s->c_out; co++) {
      float *w = dwide + (size_t)co * n;
      for (int y = 0; y < rows; y++) {
        const float *d = dout + ((size_t)co * ho + r0 + y) * wo;
        float *wy = w + (size_t)y * p.wq;
        int xend = y + 1 < rows ? p.wq : n - y * p.wq;
        memcpy(wy, d, (size_t)wo * sizeof *wy);
        for (int x = wo; x < xend; x++) wy[x] = 0;
      }
    }
    if (dwt) {
      conv2d_pad_tile(pad, in, s, &p, H, W, r0);
      for (size_t t = 0; t < taps; t++)
        vqgpt_sgemm(false, true, s->c_out, s->c_in, n, 1.0f, dwide, n,
                    pad + conv2d_tap_offset(&p, s, t), (int)p.plen, 1.0f, dwt + t * cc, s->c_in);
    }
    if (din) {
      memset(dpad, 0, (size_t)s->c_in * p.plen * sizeof *dpad);
      for (size_t t = 0; t < taps; t++)
        vqgpt_sgemm(true, false, s->c_in, n, s->c_out, 1.0f, wt + t * cc, s->c_in, dwide, n, 1.0f,
                    dpad + conv2d_tap_offset(&p, s, t), (int)p.plen);
      // The adjoint of conv2d_pad_tile. Tiles overlap by (k_h - 1) / stride phase rows, hence +=.
      int st = s->stride;
#pragma omp parallel for schedule(static) if ((size_t)s->c_in * p.plen >= 65536)
      for (int ci = 0; ci < s->c_in; ci++)
        for (int a = 0; a < st; a++)
          for (int b = 0; b < st; b++) {
            const float *src = dpad + (size_t)ci * p.plen + (size_t)(a * st + b) * p.qlen;
            int off = b - s->pad_left, lo, hi;
            conv2d_valid_cols(off, st, W, p.wq, &lo, &hi);
            for (int y = 0; y < p.qrows; y++) {
              int ih = (r0 + y) * st + a - s->pad_top;
              if (ih < 0 || ih >= H) continue;
              const float *sy = src + (size_t)y * p.wq;
              float *d = din + ((size_t)ci * H + ih) * W;
              if (st == 1)  // constant strides let the compiler vectorize
                for (int x = lo; x < hi; x++) d[x + off] += sy[x];
              else if (st == 2)
                for (int x = lo; x < hi; x++) d[2 * x + off] += sy[x];
              else
                for (int x = lo; x < hi; x++) d[x * st + off] += sy[x];
            }
          }
    }
  }
}

void vqgpt_conv2d_backward(float *din, float *dweight, float *dbias, const float *dout,
                           const float *in, const float *weight, const conv2d_shape *s, int B,
                           int H, int W, float *scratch) {
  int ho = vqgpt_conv2d_out_h(s, H), wo = vqgpt_conv2d_out_w(s, W);
  size_t in_plane = (size_t)H * W, out_plane = (size_t)ho * wo;
  if (dbias) {
#pragma omp parallel for schedule(static) if ((size_t)B * s->c_out * out_plane >= 65536)
    for (int co = 0; co < s->c_out; co++) {
      double acc = 0;
      for (int b = 0; b < B; b++) {
        const float *d = dout + ((size_t)b * s->c_out + co) * out_plane;
        // Per-plane float sum in vector lanes (a serial float sum is latency bound); planes
        // combine in double.
        float part = 0;
#pragma omp simd reduction(+ : part)
        for (size_t i = 0; i < out_plane; i++) part += d[i];
        acc += part;
      }
      dbias[co] += (float)acc;
    }
  }
  if (vqgpt_conv2d_thin_applies(s)) {
    vqgpt_conv2d_thin_backward(din, dweight, dout, in, weight, s, B, H, W, scratch);
    return;
  }
  if (conv2d_use_winograd(s, H, W)) {
    if (dweight)
      vqgpt_winograd_backward_weight(dweight, dout, in, s->c_in, s->c_out, B, H, W, scratch);
    if (din) vqgpt_winograd_backward_data(din, dout, weight, s->c_in, s->c_out, B, H, W, scratch);
    return;
  }
  int nt, group;
  conv2d_path path = conv2d_choose(s, ho, wo, B, &nt, &group);
  if (path == PATH_IMAGES) {
    conv2d_backward_images(din, dweight, dout, in, weight, s, B, H, W, nt, scratch);
    return;
  }
  if (path == PATH_GROUPED) {
    conv2d_backward_grouped(din, dweight, dout, in, weight, s, B, H, W, group, scratch);
    return;
  }
  bool shifted = path == PATH_SHIFTED;
  size_t taps = conv2d_taps(s), cc = (size_t)s->c_out * s->c_in;
  float *wt = scratch, *dwt = scratch + taps * cc;  // (taps, c_out, c_in) on the shifted path
  if (shifted) {
    if (din) conv2d_weight_by_tap(wt, weight, s);
    if (dweight) memset(dwt, 0, taps * cc * sizeof *dwt);
  }
  for (int b = 0; b < B; b++) {
    const float *inb = in + (size_t)b * s->c_in * in_plane;           // (c_in, H, W)
    const float *doutb = dout + (size_t)b * s->c_out * out_plane;     // (c_out, Ho, Wo)
    float *dinb = din ? din + (size_t)b * s->c_in * in_plane : NULL;  // (c_in, H, W)
    if (shifted) {
      if (dinb) memset(dinb, 0, (size_t)s->c_in * in_plane * sizeof *dinb);
      conv2d_backward_shifted(dinb, dweight ? dwt : NULL, doutb, inb, s, H, W, ho, wo, wt,
                              scratch + 2 * taps * cc);
    } else {
      conv2d_backward_image(dinb, dweight, doutb, inb, weight, s, H, W, scratch);
    }
  }
  if (shifted && dweight) {
#pragma omp parallel for schedule(static) if (cc * taps >= 65536)
    for (int co = 0; co < s->c_out; co++)
      for (int ci = 0; ci < s->c_in; ci++) {
        float *dw = dweight + ((size_t)co * s->c_in + ci) * taps;
        for (size_t t = 0; t < taps; t++) dw[t] += dwt[t * cc + (size_t)co * s->c_in + ci];
      }
  }
}
