#include "core/conv2d_thin.h"

#include <omp.h>
#include <string.h>

#include "core/parallel.h"

// Output columns computed together: the accumulators of up to 4 channels x 16 columns stay
// in registers while every input channel and kernel tap is added in.
#define THIN_COLS 16

bool vqgpt_conv2d_thin_applies(const conv2d_shape *s) {
  // Padding of at most k - 1 keeps the input gradient a plain convolution (see below), and
  // more input than output channels keeps that convolution off this path.
  return s->c_out <= CONV_THIN_MAX_OUT && s->c_in > CONV_THIN_MAX_OUT && s->stride == 1 &&
         s->pad_top < s->k_h && s->pad_bottom < s->k_h && s->pad_left < s->k_w &&
         s->pad_right < s->k_w;
}

// Floats of one zero-padded band of input rows: images are processed in bands of output rows
// so that the padded copy stays small for any image size.
#define THIN_BAND_FLOATS ((size_t)1 << 20)

// Bands of output rows and their zero-padded input rows: rows of `stride` floats, long
// enough that the last block of THIN_COLS outputs reads only zeros past the padded width.
typedef struct {
  int band, n_bands;  // output rows per band, bands per image
  int hp, stride;     // padded input rows per band (band + k_h - 1), floats per row
} thin_pad;

static thin_pad pad_geometry(const conv2d_shape *s, int H, int W) {
  int ho = vqgpt_conv2d_out_h(s, H), wo = vqgpt_conv2d_out_w(s, W);
  int wo_up = (wo + THIN_COLS - 1) / THIN_COLS * THIN_COLS;
  thin_pad p;
  p.stride = wo_up + s->k_w - 1;
  if (p.stride < W + s->pad_left + s->pad_right) p.stride = W + s->pad_left + s->pad_right;
  long rows = (long)(THIN_BAND_FLOATS / ((size_t)s->c_in * p.stride)) - (s->k_h - 1);
  p.band = rows < 1 ? 1 : rows > ho ? ho : (int)rows;
  p.n_bands = (ho + p.band - 1) / p.band;
  p.hp = p.band + s->k_h - 1;
  return p;
}

static size_t pad_floats(const conv2d_shape *s, const thin_pad *p) {
  return (size_t)s->c_in * p->hp * p->stride;
}

// The convolution that gives the input gradient: the output gradient convolved with the
// flipped kernel, channels swapped, padded by k - 1 - pad on each side.
static conv2d_shape transposed_shape(const conv2d_shape *s) {
  conv2d_shape t = {s->c_out,
                    s->c_in,
                    s->k_h,
                    s->k_w,
                    1,
                    s->k_h - 1 - s->pad_top,
                    s->k_h - 1 - s->pad_bottom,
                    s->k_w - 1 - s->pad_left,
                    s->k_w - 1 - s->pad_right};
  return t;
}

size_t vqgpt_conv2d_thin_scratch_size(const conv2d_shape *s, int h, int w) {
  thin_pad p = pad_geometry(s, h, w);
  size_t nw = (size_t)s->c_out * s->c_in * s->k_h * s->k_w;
  size_t per_thread = pad_floats(s, &p) + nw;  // padded image and a weight-gradient share
  conv2d_shape t = transposed_shape(s);
  size_t din =
      nw + vqgpt_conv2d_scratch_size(&t, vqgpt_conv2d_out_h(s, h), vqgpt_conv2d_out_w(s, w));
  size_t par = (size_t)vqgpt_scratch_threads() * per_thread;
  return par > din ? par : din;
}

// The padded input rows of output rows [r0, r0 + rows): padded row j holds input row
// r0 + j - pad_top.
static void pad_band(float *dst, const float *img, const conv2d_shape *s, const thin_pad *p, int H,
                     int W, int r0, int rows) {
  memset(dst, 0, pad_floats(s, p) * sizeof *dst);
  for (int c = 0; c < s->c_in; c++)
    for (int j = 0; j < rows + s->k_h - 1; j++) {
      int y = r0 + j - s->pad_top;
      if (y < 0 || y >= H) continue;
      memcpy(dst + ((size_t)c * p->hp + j) * p->stride + s->pad_left, img + ((size_t)c * H + y) * W,
             (size_t)W * sizeof *dst);
    }
}

// Eight floats as one vector (GCC/Clang vector extension): the compiler's auto-vectorizer
// picks the wrong loop of this nest, so the vectors are spelled out.
typedef float thin_vec __attribute__((vector_size(32)));
static inline thin_vec load_vec(const float *p) {
  thin_vec v;
  memcpy(&v, p, sizeof v);
  return v;
}

// Output rows [r0, r0 + rows) of out (C, ho, wo) from their padded band; C is a constant
// after inlining.
static inline void thin_forward_band(float *out, const float *pad, const float *weight,
                                     const float *bias, const conv2d_shape *s, const thin_pad *p,
                                     int ho, int wo, int r0, int rows, const int C) {
  const int kh = s->k_h, kw = s->k_w, taps = kh * kw;
  for (int oy = 0; oy < rows; oy++)
    for (int x0 = 0; x0 < wo; x0 += THIN_COLS) {
      thin_vec acc[CONV_THIN_MAX_OUT][2];
      for (int co = 0; co < C; co++)
        acc[co][0] = acc[co][1] = (thin_vec){0} + (bias ? bias[co] : 0.0f);
      for (int ci = 0; ci < s->c_in; ci++)
        for (int ki = 0; ki < kh; ki++) {
          const float *row = pad + ((size_t)ci * p->hp + oy + ki) * p->stride + x0;
          const float *w = weight + (size_t)ci * taps + ki * kw;  // + co * c_in * taps + kj
          for (int kj = 0; kj < kw; kj++) {
            thin_vec lo = load_vec(row + kj), hi = load_vec(row + kj + 8);
            for (int co = 0; co < C; co++) {
              const float wv = w[(size_t)co * s->c_in * taps + kj];
              acc[co][0] += wv * lo;
              acc[co][1] += wv * hi;
            }
          }
        }
      int n = wo - x0 < THIN_COLS ? wo - x0 : THIN_COLS;
      for (int co = 0; co < C; co++)
        memcpy(out + ((size_t)co * ho + r0 + oy) * wo + x0, acc[co], (size_t)n * sizeof(float));
    }
}

void vqgpt_conv2d_thin_forward(float *out, const float *in, const float *weight, const float *bias,
                               const conv2d_shape *s, int B, int H, int W, float *scratch) {
  thin_pad p = pad_geometry(s, H, W);
  int ho = vqgpt_conv2d_out_h(s, H), wo = vqgpt_conv2d_out_w(s, W);
  size_t per_thread = pad_floats(s, &p) + (size_t)s->c_out * s->c_in * s->k_h * s->k_w;
#pragma omp parallel num_threads(vqgpt_team_threads())
  {
    float *pad = scratch + (size_t)omp_get_thread_num() * per_thread;
#pragma omp for schedule(static)
    for (int it = 0; it < B * p.n_bands; it++) {
      int b = it / p.n_bands, r0 = it % p.n_bands * p.band;
      int rows = ho - r0 < p.band ? ho - r0 : p.band;
      pad_band(pad, in + (size_t)b * s->c_in * H * W, s, &p, H, W, r0, rows);
      float *o = out + (size_t)b * s->c_out * ho * wo;
      switch (s->c_out) {  // constant channel counts let the accumulators live in registers
        case 1:
          thin_forward_band(o, pad, weight, bias, s, &p, ho, wo, r0, rows, 1);
          break;
        case 2:
          thin_forward_band(o, pad, weight, bias, s, &p, ho, wo, r0, rows, 2);
          break;
        case 3:
          thin_forward_band(o, pad, weight, bias, s, &p, ho, wo, r0, rows, 3);
          break;
        default:
          thin_forward_band(o, pad, weight, bias, s, &p, ho, wo, r0, rows, 4);
          break;
      }
    }
  }
}

// sum over `rows` output rows of dout (rows, wo) times the padded band plane shifted by
// (ki, kj).
static float thin_dot(const float *dout, const float *plane, const thin_pad *p, int rows, int wo,
                      int ki, int kj) {
  float lanes[THIN_COLS] = {0};
  float tail = 0;
  int body = wo / THIN_COLS * THIN_COLS;
  for (int oy = 0; oy < rows; oy++) {
    const float *d = dout + (size_t)oy * wo, *x = plane + (size_t)(oy + ki) * p->stride + kj;
    for (int x0 = 0; x0 < body; x0 += THIN_COLS)
      for (int l = 0; l < THIN_COLS; l++) lanes[l] += d[x0 + l] * x[x0 + l];
    for (int c = body; c < wo; c++) tail += d[c] * x[c];
  }
  for (int l = 0; l < THIN_COLS; l++) tail += lanes[l];
  return tail;
}

void vqgpt_conv2d_thin_backward(float *din, float *dweight, const float *dout, const float *in,
                                const float *weight, const conv2d_shape *s, int B, int H, int W,
                                float *scratch) {
  int ho = vqgpt_conv2d_out_h(s, H), wo = vqgpt_conv2d_out_w(s, W);
  const int taps = s->k_h * s->k_w;
  size_t nw = (size_t)s->c_out * s->c_in * taps;
  if (dweight) {
    thin_pad p = pad_geometry(s, H, W);
    size_t per_thread = pad_floats(s, &p) + nw;
    int n_shares = 1;
#pragma omp parallel num_threads(vqgpt_team_threads())
    {
#pragma omp single
      n_shares = omp_get_num_threads();
      float *pad = scratch + (size_t)omp_get_thread_num() * per_thread;
      float *share = pad + pad_floats(s, &p);  // (c_out, c_in, k_h, k_w)
      memset(share, 0, nw * sizeof *share);
#pragma omp for schedule(static)
      for (int it = 0; it < B * p.n_bands; it++) {
        int b = it / p.n_bands, r0 = it % p.n_bands * p.band;
        int rows = ho - r0 < p.band ? ho - r0 : p.band;
        pad_band(pad, in + (size_t)b * s->c_in * H * W, s, &p, H, W, r0, rows);
        const float *db = dout + (size_t)b * s->c_out * ho * wo + (size_t)r0 * wo;
        for (int co = 0; co < s->c_out; co++)
          for (int ci = 0; ci < s->c_in; ci++)
            for (int t = 0; t < taps; t++)
              share[((size_t)co * s->c_in + ci) * taps + t] +=
                  thin_dot(db + (size_t)co * ho * wo, pad + (size_t)ci * p.hp * p.stride, &p, rows,
                           wo, t / s->k_w, t % s->k_w);
      }
    }
    vqgpt_sum_shares(dweight, true, scratch + pad_floats(s, &p), per_thread, n_shares, nw);
  }
  if (din) {
    // The flipped kernel with channels swapped: wt[ci][co][ki][kj] = w[co][ci][kh-1-ki][kw-1-kj].
    float *wt = scratch;
    for (int co = 0; co < s->c_out; co++)
      for (int ci = 0; ci < s->c_in; ci++)
        for (int t = 0; t < taps; t++)
          wt[((size_t)ci * s->c_out + co) * taps + t] =
              weight[((size_t)co * s->c_in + ci) * taps + (taps - 1 - t)];
    conv2d_shape t = transposed_shape(s);
    vqgpt_conv2d_forward(din, dout, wt, NULL, &t, B, ho, wo, scratch + nw);
  }
}
