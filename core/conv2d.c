#include "core/conv2d.h"

#include <string.h>

#include "core/blas.h"

// Floats of im2col columns per tile. Large enough that each sgemm has thousands of columns
// (OpenBLAS needs that to reach full speed), small enough to stay far below the 64 MB
// scratch budget for any image size; at least one output row is always taken.
#define CONV_COLS_BUDGET ((size_t)1 << 21)

conv2d_shape conv2d_same(int c_in, int c_out, int k) {
  conv2d_shape s = {c_in, c_out, k, k, 1, k / 2, k / 2, k / 2, k / 2};
  return s;
}

int conv2d_out_h(const conv2d_shape *s, int h) {
  return (h + s->pad_top + s->pad_bottom - s->k_h) / s->stride + 1;
}

int conv2d_out_w(const conv2d_shape *s, int w) {
  return (w + s->pad_left + s->pad_right - s->k_w) / s->stride + 1;
}

// 1x1 stride-1 unpadded convolutions are a plain matrix product on the input itself.
static int conv2d_is_pointwise(const conv2d_shape *s) {
  return s->k_h == 1 && s->k_w == 1 && s->stride == 1 && s->pad_top == 0 &&
         s->pad_bottom == 0 && s->pad_left == 0 && s->pad_right == 0;
}

static size_t conv2d_kdim(const conv2d_shape *s) { return (size_t)s->c_in * s->k_h * s->k_w; }

// Output rows per im2col tile.
static int conv2d_tile_rows(const conv2d_shape *s, int ho, int wo) {
  size_t per_row = conv2d_kdim(s) * (size_t)wo;
  size_t rows = per_row ? CONV_COLS_BUDGET / per_row : (size_t)ho;
  if (rows < 1) rows = 1;
  if (rows > (size_t)ho) rows = (size_t)ho;
  return (int)rows;
}

size_t conv2d_scratch_size(const conv2d_shape *s, int h, int w) {
  if (conv2d_is_pointwise(s)) return 0;
  int ho = conv2d_out_h(s, h), wo = conv2d_out_w(s, w);
  return conv2d_kdim(s) * (size_t)wo * (size_t)conv2d_tile_rows(s, ho, wo);
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

// cols (c_in*k_h*k_w, (r1-r0)*Wo): the input patches of output rows [r0, r1), zero padded,
// rows ordered like the weight's (c_in, k_h, k_w).
static void conv2d_im2col(float *cols, const float *in, const conv2d_shape *s, int H, int W,
                          int wo, int r0, int r1) {
  size_t ncols = (size_t)(r1 - r0) * wo;
  int kh = s->k_h, kw = s->k_w, st = s->stride;
#pragma omp parallel for schedule(static) if (conv2d_kdim(s) * ncols >= 65536)
  for (int ci = 0; ci < s->c_in; ci++) {
    const float *plane = in + (size_t)ci * H * W;  // (H, W)
    for (int ki = 0; ki < kh; ki++)
      for (int kj = 0; kj < kw; kj++) {
        float *dst = cols + (((size_t)ci * kh + ki) * kw + kj) * ncols;
        int off = kj - s->pad_left, lo, hi;
        conv2d_valid_cols(off, st, W, wo, &lo, &hi);
        for (int oh = r0; oh < r1; oh++) {
          float *d = dst + (size_t)(oh - r0) * wo;
          int ih = oh * st - s->pad_top + ki;
          if (ih < 0 || ih >= H) {
            memset(d, 0, (size_t)wo * sizeof *d);
            continue;
          }
          const float *src = plane + (size_t)ih * W;  // input row; column x*st + off
          for (int x = 0; x < lo; x++) d[x] = 0;
          if (st == 1)
            memcpy(d + lo, src + lo + off, (size_t)(hi - lo) * sizeof *d);
          else
            for (int x = lo; x < hi; x++) d[x] = src[x * st + off];
          for (int x = hi; x < wo; x++) d[x] = 0;
        }
      }
  }
}

// din += col2im(cols): the adjoint of conv2d_im2col.
static void conv2d_col2im(float *din, const float *cols, const conv2d_shape *s, int H, int W,
                          int wo, int r0, int r1) {
  size_t ncols = (size_t)(r1 - r0) * wo;
  int kh = s->k_h, kw = s->k_w, st = s->stride;
  // Parallel over input channels: each thread owns whole planes of din.
#pragma omp parallel for schedule(static) if (conv2d_kdim(s) * ncols >= 65536)
  for (int ci = 0; ci < s->c_in; ci++) {
    float *plane = din + (size_t)ci * H * W;  // (H, W)
    for (int ki = 0; ki < kh; ki++)
      for (int kj = 0; kj < kw; kj++) {
        const float *src = cols + (((size_t)ci * kh + ki) * kw + kj) * ncols;
        int off = kj - s->pad_left, lo, hi;
        conv2d_valid_cols(off, st, W, wo, &lo, &hi);
        for (int oh = r0; oh < r1; oh++) {
          int ih = oh * st - s->pad_top + ki;
          if (ih < 0 || ih >= H) continue;
          const float *c = src + (size_t)(oh - r0) * wo;
          float *d = plane + (size_t)ih * W;  // input row; column x*st + off
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

void conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                    const conv2d_shape *s, int B, int H, int W, float *scratch) {
  int ho = conv2d_out_h(s, H), wo = conv2d_out_w(s, W);
  size_t in_plane = (size_t)H * W, out_plane = (size_t)ho * wo;
  int kdim = (int)conv2d_kdim(s);
  for (int b = 0; b < B; b++) {
    const float *inb = in + (size_t)b * s->c_in * in_plane;  // (c_in, H, W)
    float *outb = out + (size_t)b * s->c_out * out_plane;     // (c_out, Ho, Wo)
    if (conv2d_is_pointwise(s)) {
      conv2d_fill_bias(outb, bias, s->c_out, out_plane, out_plane);
      vqgpt_sgemm(false, false, s->c_out, (int)out_plane, s->c_in, 1.0f, weight, s->c_in, inb,
                  (int)in_plane, 1.0f, outb, (int)out_plane);
      continue;
    }
    int rows = conv2d_tile_rows(s, ho, wo);
    for (int r0 = 0; r0 < ho; r0 += rows) {
      int r1 = r0 + rows < ho ? r0 + rows : ho;
      int ncols = (r1 - r0) * wo;
      float *cols = scratch;  // (kdim, ncols)
      conv2d_im2col(cols, inb, s, H, W, wo, r0, r1);
      float *o = outb + (size_t)r0 * wo;  // (c_out, ncols) with row stride Ho*Wo
      conv2d_fill_bias(o, bias, s->c_out, out_plane, (size_t)ncols);
      vqgpt_sgemm(false, false, s->c_out, ncols, kdim, 1.0f, weight, kdim, cols, ncols, 1.0f,
                  o, (int)out_plane);
    }
  }
}

void conv2d_backward(float *din, float *dweight, float *dbias, const float *dout,
                     const float *in, const float *weight, const conv2d_shape *s, int B, int H,
                     int W, float *scratch) {
  int ho = conv2d_out_h(s, H), wo = conv2d_out_w(s, W);
  size_t in_plane = (size_t)H * W, out_plane = (size_t)ho * wo;
  int kdim = (int)conv2d_kdim(s);
  if (dbias) {
#pragma omp parallel for schedule(static) if ((size_t)B * s->c_out * out_plane >= 65536)
    for (int co = 0; co < s->c_out; co++) {
      double acc = 0;
      for (int b = 0; b < B; b++) {
        const float *d = dout + ((size_t)b * s->c_out + co) * out_plane;
        float part = 0;  // per-plane float sum vectorizes; planes combine in double
        for (size_t i = 0; i < out_plane; i++) part += d[i];
        acc += part;
      }
      dbias[co] += (float)acc;
    }
  }
  for (int b = 0; b < B; b++) {
    const float *inb = in + (size_t)b * s->c_in * in_plane;        // (c_in, H, W)
    const float *doutb = dout + (size_t)b * s->c_out * out_plane;  // (c_out, Ho, Wo)
    float *dinb = din ? din + (size_t)b * s->c_in * in_plane : NULL;  // (c_in, H, W)
    if (conv2d_is_pointwise(s)) {
      if (dweight)
        vqgpt_sgemm(false, true, s->c_out, s->c_in, (int)out_plane, 1.0f, doutb,
                    (int)out_plane, inb, (int)in_plane, 1.0f, dweight, s->c_in);
      if (dinb)
        vqgpt_sgemm(true, false, s->c_in, (int)in_plane, s->c_out, 1.0f, weight, s->c_in, doutb,
                    (int)out_plane, 0.0f, dinb, (int)in_plane);
      continue;
    }
    if (dinb) memset(dinb, 0, (size_t)s->c_in * in_plane * sizeof *dinb);
    int rows = conv2d_tile_rows(s, ho, wo);
    for (int r0 = 0; r0 < ho; r0 += rows) {
      int r1 = r0 + rows < ho ? r0 + rows : ho;
      int ncols = (r1 - r0) * wo;
      float *cols = scratch;  // (kdim, ncols)
      const float *d = doutb + (size_t)r0 * wo;  // (c_out, ncols) with row stride Ho*Wo
      if (dweight) {
        conv2d_im2col(cols, inb, s, H, W, wo, r0, r1);
        vqgpt_sgemm(false, true, s->c_out, kdim, ncols, 1.0f, d, (int)out_plane, cols, ncols,
                    1.0f, dweight, kdim);
      }
      if (dinb) {
        vqgpt_sgemm(true, false, kdim, ncols, s->c_out, 1.0f, weight, kdim, d, (int)out_plane,
                    0.0f, cols, ncols);
        conv2d_col2im(dinb, cols, s, H, W, wo, r0, r1);
      }
    }
  }
}
