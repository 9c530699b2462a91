#include "stage1_vqgan/lpips.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/activation.h"
#include "core/conv2d.h"
#include "core/error.h"
#include "core/pool.h"
#include "weights/safetensors.h"

// VGG16 features up to relu5_3: 13 conv3x3 + ReLU in 5 levels, a 2x2 max pool before levels
// 2..5. Indices are torchvision's `features` positions, which the LPIPS slices keep.
enum { LP_NCONV = 13, LP_NLEVEL = 5, LP_BLOCK = 256 };
static const int lp_index[LP_NCONV] = {0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28};
static const int lp_level[LP_NCONV] = {0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4};
static const int lp_chans[LP_NLEVEL] = {64, 128, 256, 512, 512};
static const int lp_first[LP_NLEVEL] = {0, 2, 4, 7, 10};  // first conv of each level
#define LP_EPS 1e-10f                                     // the reference normalize_tensor's eps

struct lpips {
  int B, H, W;
  int lh[LP_NLEVEL], lw[LP_NLEVEL];  // spatial size of each level
  conv2d_shape shape[LP_NCONV];
  float *weight[LP_NCONV], *bias[LP_NCONV];  // (c_out, c_in, 3, 3), (c_out)
  float *lin[LP_NLEVEL];                     // (C_k) head weights
  float shift[3], scale[3];
  // x's branch, kept for backward.
  int B_last;
  bool valid;
  float *xs;                   // (B, 3, H, W) scaled input
  float *act[LP_NCONV];        // (B, c_out, h, w) conv + ReLU outputs
  float *pooled[LP_NLEVEL];    // (B, C_{k-1}, h_k, w_k) pool outputs feeding level k >= 1
  uint8_t *argmax[LP_NLEVEL];  // (B, C_{k-1}, h_k, w_k)
  // y's branch: only its normalised features survive.
  float *fy[LP_NLEVEL];  // (B, C_k, h_k, w_k)
  float *buf[2];         // ping-pong activations for y, gradients in backward
  uint8_t *yargmax;      // pool argmax scratch for y
  float *scratch;        // conv2d scratch
  double *partial;       // per (image, pixel block) head sums, added in a fixed order
  float *arena;
  uint8_t *arena8;
};

static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

void vqgpt_lpips_free(lpips *m) {
  if (!m) return;
  free(m->arena);
  free(m->arena8);
  free(m->partial);
  free(m);
}

static lpips *lp_build(int B, int H, int W) {
  if (B < 1 || H < 16 || W < 16) {
    vqgpt_error("lpips: needs at least one image of 16x16 or more, got B %d, %dx%d", B, H, W);
    return NULL;
  }
  lpips *m = calloc(1, sizeof *m);
  if (!m) {
    vqgpt_error("lpips: out of memory");
    return NULL;
  }
  m->B = B, m->H = H, m->W = W;
  for (int k = 0; k < LP_NLEVEL; k++) {
    m->lh[k] = k ? m->lh[k - 1] / 2 : H;
    m->lw[k] = k ? m->lw[k - 1] / 2 : W;
  }
  size_t n_w = 0, n_act = 0, n_pool = 0, n_fy = 0, n_buf = 0, n_scr = 0, n_blocks = 0;
  int c_in = 3;
  for (int i = 0; i < LP_NCONV; i++) {
    const int k = lp_level[i], co = lp_chans[k];
    m->shape[i] = vqgpt_conv2d_same(c_in, co, 3);
    n_w += pad16((size_t)co * c_in * 9) + pad16((size_t)co);
    const size_t a = (size_t)B * co * m->lh[k] * m->lw[k];
    n_act += pad16(a);
    if (a > n_buf) n_buf = a;
    const size_t s = vqgpt_conv2d_scratch_size(&m->shape[i], m->lh[k], m->lw[k]);
    if (s > n_scr) n_scr = s;
    c_in = co;
  }
  for (int k = 0; k < LP_NLEVEL; k++) {
    const size_t hw = (size_t)m->lh[k] * m->lw[k];
    n_w += pad16((size_t)lp_chans[k]);
    n_fy += pad16((size_t)B * lp_chans[k] * hw);
    if (k) n_pool += pad16((size_t)B * lp_chans[k - 1] * hw);
    n_blocks += (hw + LP_BLOCK - 1) / LP_BLOCK;
  }
  const size_t n_xs = pad16((size_t)B * 3 * H * W);
  n_buf = pad16(n_buf);
  const size_t total = n_w + n_xs + n_act + n_pool + n_fy + 2 * n_buf + pad16(n_scr);
  m->arena = calloc(total, sizeof(float));
  m->arena8 = calloc(2 * n_pool, 1);
  m->partial = calloc((size_t)B * n_blocks, sizeof(double));
  if (!m->arena || !m->arena8 || !m->partial) {
    vqgpt_error("lpips: out of memory for %zu floats", total);
    vqgpt_lpips_free(m);
    return NULL;
  }
  float *p = m->arena;
  c_in = 3;
  for (int i = 0; i < LP_NCONV; i++) {
    const int co = lp_chans[lp_level[i]];
    m->weight[i] = p, p += pad16((size_t)co * c_in * 9);
    m->bias[i] = p, p += pad16((size_t)co);
    c_in = co;
  }
  for (int k = 0; k < LP_NLEVEL; k++) m->lin[k] = p, p += pad16((size_t)lp_chans[k]);
  m->xs = p, p += n_xs;
  for (int i = 0; i < LP_NCONV; i++) {
    const int k = lp_level[i];
    m->act[i] = p, p += pad16((size_t)B * lp_chans[k] * m->lh[k] * m->lw[k]);
  }
  uint8_t *q = m->arena8;
  for (int k = 1; k < LP_NLEVEL; k++) {
    const size_t n = pad16((size_t)B * lp_chans[k - 1] * m->lh[k] * m->lw[k]);
    m->pooled[k] = p, p += n;
    m->argmax[k] = q, q += n;
  }
  m->yargmax = q;
  for (int k = 0; k < LP_NLEVEL; k++)
    m->fy[k] = p, p += pad16((size_t)B * lp_chans[k] * m->lh[k] * m->lw[k]);
  m->buf[0] = p, p += n_buf;
  m->buf[1] = p, p += n_buf;
  m->scratch = p;
  return m;
}

lpips *vqgpt_lpips_load(const char *path, int B, int H, int W) {
  st_file f;
  if (vqgpt_st_open(&f, path)) return NULL;
  if (vqgpt_st_check_format(&f, "taming-lpips", "LPIPS weights")) {
    vqgpt_st_close(&f);
    return NULL;
  }
  lpips *m = lp_build(B, H, W);
  if (!m) {
    vqgpt_st_close(&f);
    return NULL;
  }
  char name[64];
  for (int i = 0; i < LP_NCONV; i++) {
    const conv2d_shape *s = &m->shape[i];
    const int64_t ws[4] = {s->c_out, s->c_in, 3, 3}, bs[1] = {s->c_out};
    snprintf(name, sizeof name, "net.slice%d.%d.weight", lp_level[i] + 1, lp_index[i]);
    if (vqgpt_st_read_weights(&f, name, m->weight[i], 4, ws)) goto fail;
    snprintf(name, sizeof name, "net.slice%d.%d.bias", lp_level[i] + 1, lp_index[i]);
    if (vqgpt_st_read_weights(&f, name, m->bias[i], 1, bs)) goto fail;
  }
  for (int k = 0; k < LP_NLEVEL; k++) {
    const int64_t ls[4] = {1, lp_chans[k], 1, 1};
    snprintf(name, sizeof name, "lin%d.model.1.weight", k);
    if (vqgpt_st_read_weights(&f, name, m->lin[k], 4, ls)) goto fail;
  }
  const int64_t ss[4] = {1, 3, 1, 1};
  if (vqgpt_st_read_weights(&f, "scaling_layer.shift", m->shift, 4, ss) ||
      vqgpt_st_read_weights(&f, "scaling_layer.scale", m->scale, 4, ss))
    goto fail;
  for (int c = 0; c < 3; c++)
    if (!(m->scale[c] != 0)) {
      vqgpt_error("%s: scaling_layer.scale has a zero", path);
      goto fail;
    }
  if (vqgpt_st_check_all_used(&f, NULL)) goto fail;
  vqgpt_st_close(&f);
  return m;
fail:
  vqgpt_st_close(&f);
  vqgpt_lpips_free(m);
  return NULL;
}

// (x - shift) / scale per channel: the reference ScalingLayer.
static void lp_scale(const lpips *m, float *out, const float *in, int B) {
  const size_t hw = (size_t)m->H * m->W;
  for (int b = 0; b < B; b++)
    for (int c = 0; c < 3; c++) {
      const float *x = in + ((size_t)b * 3 + c) * hw;  // (H, W)
      float *y = out + ((size_t)b * 3 + c) * hw;
      const float sh = m->shift[c], sc = m->scale[c];
      for (size_t i = 0; i < hw; i++) y[i] = (x[i] - sh) / sc;
    }
}

// One conv3x3 + ReLU of VGG.
static void lp_conv(lpips *m, int i, float *out, const float *in, int B) {
  const int k = lp_level[i];
  vqgpt_conv2d_forward(out, in, m->weight[i], m->bias[i], &m->shape[i], B, m->lh[k], m->lw[k],
                       m->scratch);
  vqgpt_relu_forward(out, out, (size_t)B * lp_chans[k] * m->lh[k] * m->lw[k]);
}

// Per pixel of one level's feature map f (B, C, HW): its channel norm n = sqrt(sum_c f_c^2),
// computed in blocks of pixels so that the inner loops run over contiguous memory. These run
// over (image, block) pairs: `nb` blocks per image.
static inline void lp_norms(float *nrm, const float *f, int C, size_t hw, size_t p0, size_t np) {
  for (size_t p = 0; p < np; p++) nrm[p] = 0;
  for (int c = 0; c < C; c++) {
    const float *fc = f + (size_t)c * hw + p0;
    for (size_t p = 0; p < np; p++) nrm[p] += fc[p] * fc[p];
  }
  for (size_t p = 0; p < np; p++) nrm[p] = sqrtf(nrm[p]) + LP_EPS;  // the divisor n + eps
}

// fy = y / (|y| + eps), the reference normalize_tensor, for y's branch.
static void lp_normalize(float *out, const float *f, int B, int C, size_t hw) {
  const size_t nb = (hw + LP_BLOCK - 1) / LP_BLOCK;
#pragma omp parallel for schedule(static)
  for (size_t t = 0; t < (size_t)B * nb; t++) {
    const size_t b = t / nb, p0 = (t % nb) * LP_BLOCK, np = hw - p0 < LP_BLOCK ? hw - p0 : LP_BLOCK;
    const float *fb = f + b * C * hw;  // (C, HW)
    float *ob = out + b * C * hw;
    float nrm[LP_BLOCK];
    lp_norms(nrm, fb, C, hw, p0, np);
    for (int c = 0; c < C; c++)
      for (size_t p = 0; p < np; p++)
        ob[(size_t)c * hw + p0 + p] = fb[(size_t)c * hw + p0 + p] / nrm[p];
  }
}

// The head of one level: value[b] += mean over pixels of sum_c w_c (fx_c - fy_c)^2, with
// fx = x / (|x| + eps). Block sums go to `partial` and are added in a fixed order, so the result
// does not depend on the thread count.
static void lp_head_forward(lpips *m, int k, const float *x, int B, float *value) {
  const int C = lp_chans[k];
  const size_t hw = (size_t)m->lh[k] * m->lw[k], nb = (hw + LP_BLOCK - 1) / LP_BLOCK;
  const float *w = m->lin[k], *fy = m->fy[k];
#pragma omp parallel for schedule(static)
  for (size_t t = 0; t < (size_t)B * nb; t++) {
    const size_t b = t / nb, p0 = (t % nb) * LP_BLOCK, np = hw - p0 < LP_BLOCK ? hw - p0 : LP_BLOCK;
    const float *xb = x + b * C * hw, *yb = fy + b * C * hw;  // (C, HW)
    float nrm[LP_BLOCK], acc[LP_BLOCK] = {0};
    lp_norms(nrm, xb, C, hw, p0, np);
    for (int c = 0; c < C; c++) {
      const float *xc = xb + (size_t)c * hw + p0, *yc = yb + (size_t)c * hw + p0;
      for (size_t p = 0; p < np; p++) {
        const float d = xc[p] / nrm[p] - yc[p];
        acc[p] += w[c] * d * d;
      }
    }
    double s = 0;
    for (size_t p = 0; p < np; p++) s += acc[p];
    m->partial[t] = s;
  }
  for (int b = 0; b < B; b++) {
    double s = 0;
    for (size_t j = 0; j < nb; j++) s += m->partial[(size_t)b * nb + j];
    value[b] += (float)(s / (double)hw);
  }
}

// Gradient of the head w.r.t. x's raw features, added (+=) into dx (B, C, HW):
//   g_c = dvalue[b] * 2 w_c (fx_c - fy_c) / HW          (w.r.t. fx)
//   dx_c = g_c / (n + eps) - x_c * sum_j(g_j x_j) / ((n + eps)^2 n)
// At n == 0 the second term is 0 (all x_c are 0 there, and ReLU passes no gradient anyway).
static void lp_head_backward(lpips *m, int k, float *dx, const float *x, const float *dvalue,
                             int B) {
  const int C = lp_chans[k];
  const size_t hw = (size_t)m->lh[k] * m->lw[k], nb = (hw + LP_BLOCK - 1) / LP_BLOCK;
  const float *w = m->lin[k], *fy = m->fy[k];
#pragma omp parallel for schedule(static)
  for (size_t t = 0; t < (size_t)B * nb; t++) {
    const size_t b = t / nb, p0 = (t % nb) * LP_BLOCK, np = hw - p0 < LP_BLOCK ? hw - p0 : LP_BLOCK;
    const float *xb = x + b * C * hw, *yb = fy + b * C * hw;  // (C, HW)
    float *db = dx + b * C * hw;
    const float s = 2.0f * dvalue[b] / (float)hw;
    float nrm[LP_BLOCK], dot[LP_BLOCK] = {0}, coef[LP_BLOCK];
    lp_norms(nrm, xb, C, hw, p0, np);
    for (int c = 0; c < C; c++) {
      const float *xc = xb + (size_t)c * hw + p0, *yc = yb + (size_t)c * hw + p0;
      const float sw = s * w[c];
      for (size_t p = 0; p < np; p++) dot[p] += sw * (xc[p] / nrm[p] - yc[p]) * xc[p];
    }
    for (size_t p = 0; p < np; p++) {
      const float n = nrm[p] - LP_EPS;
      coef[p] = n > 0 ? dot[p] / (nrm[p] * nrm[p] * n) : 0.0f;
    }
    for (int c = 0; c < C; c++) {
      const float *xc = xb + (size_t)c * hw + p0, *yc = yb + (size_t)c * hw + p0;
      float *dc = db + (size_t)c * hw + p0;
      const float sw = s * w[c];
      for (size_t p = 0; p < np; p++) {
        const float g = sw * (xc[p] / nrm[p] - yc[p]);
        dc[p] += g / nrm[p] - xc[p] * coef[p];
      }
    }
  }
}

int vqgpt_lpips_forward(lpips *m, const float *x, const float *y, int B, float *value) {
  if (B < 1 || B > m->B) return vqgpt_error("lpips: batch %d, built for at most %d", B, m->B);
  m->valid = false;
  // y's branch: activations ping-pong through buf[0..1]; only normalised features are kept.
  float *cur = m->buf[0];
  lp_scale(m, cur, y, B);
  for (int i = 0; i < LP_NCONV; i++) {
    const int k = lp_level[i];
    float *other = cur == m->buf[0] ? m->buf[1] : m->buf[0];
    if (i == lp_first[k] && k > 0) {  // pool the previous level first
      vqgpt_maxpool2x2_forward(other, m->yargmax, cur, B, lp_chans[k - 1], m->lh[k - 1],
                               m->lw[k - 1]);
      cur = other;
      other = cur == m->buf[0] ? m->buf[1] : m->buf[0];
    }
    lp_conv(m, i, other, cur, B);
    cur = other;
    if (i + 1 == LP_NCONV || lp_level[i + 1] != k)
      lp_normalize(m->fy[k], cur, B, lp_chans[k], (size_t)m->lh[k] * m->lw[k]);
  }
  // x's branch, every activation kept.
  lp_scale(m, m->xs, x, B);
  const float *in = m->xs;
  for (int i = 0; i < LP_NCONV; i++) {
    const int k = lp_level[i];
    if (i == lp_first[k] && k > 0) {
      vqgpt_maxpool2x2_forward(m->pooled[k], m->argmax[k], in, B, lp_chans[k - 1], m->lh[k - 1],
                               m->lw[k - 1]);
      in = m->pooled[k];
    }
    lp_conv(m, i, m->act[i], in, B);
    in = m->act[i];
  }
  for (int b = 0; b < B; b++) value[b] = 0;
  for (int k = 0; k < LP_NLEVEL; k++) {
    const int last = k + 1 < LP_NLEVEL ? lp_first[k + 1] - 1 : LP_NCONV - 1;
    lp_head_forward(m, k, m->act[last], B, value);
  }
  m->B_last = B;
  m->valid = true;
  return 0;
}

int vqgpt_lpips_backward(lpips *m, const float *dvalue, float *dx) {
  if (!m->valid) return vqgpt_error("lpips: backward without a forward pass");
  const int B = m->B_last;
  float *g = m->buf[0];  // gradient at the current conv's output
  for (int k = LP_NLEVEL - 1; k >= 0; k--) {
    const int last = k + 1 < LP_NLEVEL ? lp_first[k + 1] - 1 : LP_NCONV - 1;
    const size_t n = (size_t)B * lp_chans[k] * m->lh[k] * m->lw[k];
    // At relu{k}_3 the gradient is the head's plus (below the top) what the next level's pool
    // routes back; g already holds the latter.
    if (k == LP_NLEVEL - 1) memset(g, 0, n * sizeof *g);
    lp_head_backward(m, k, g, m->act[last], dvalue, B);
    for (int i = last; i >= lp_first[k]; i--) {
      // ReLU ran in place: its output is positive exactly where its input was, and PyTorch's
      // ReLU backward reads the output too.
      vqgpt_relu_backward(g, g, m->act[i], n);
      float *gin = g == m->buf[0] ? m->buf[1] : m->buf[0];
      const float *in = i > lp_first[k] ? m->act[i - 1] : k > 0 ? m->pooled[k] : m->xs;
      vqgpt_conv2d_backward(gin, NULL, NULL, g, in, m->weight[i], &m->shape[i], B, m->lh[k],
                            m->lw[k], m->scratch);
      g = gin;
    }
    if (k > 0) {
      float *gp = g == m->buf[0] ? m->buf[1] : m->buf[0];
      vqgpt_maxpool2x2_backward(gp, g, m->argmax[k], B, lp_chans[k - 1], m->lh[k - 1],
                                m->lw[k - 1]);
      g = gp;
    }
  }
  // Through the scaling layer.
  const size_t hw = (size_t)m->H * m->W;
  for (int b = 0; b < B; b++)
    for (int c = 0; c < 3; c++) {
      const float *gs = g + ((size_t)b * 3 + c) * hw;  // (H, W)
      float *d = dx + ((size_t)b * 3 + c) * hw;
      const float sc = m->scale[c];
      for (size_t i = 0; i < hw; i++) d[i] = gs[i] / sc;
    }
  return 0;
}
