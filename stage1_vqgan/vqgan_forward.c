// Forward passes of the VQGAN's building blocks, over caller-provided buffers.
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "core/activation.h"
#include "core/attention2d.h"
#include "core/blas.h"
#include "core/error.h"
#include "core/groupnorm.h"
#include "core/upsample.h"
#include "stage1_vqgan/vqgan_layers.h"

void vqgpt_vqgan_add_inplace(float *y, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void vqgpt_vqgan_conv_forward(const vqgan *m, const vqgan_conv *c, float *out, const float *in,
                              int B, int h, int w, float *scratch) {
  vqgpt_conv2d_forward(out, in, m->w + c->w, m->w + c->b, &c->s, B, h, w, scratch);
}

static void groupnorm(const vqgan *m, const vqgan_norm *n, float *out, const float *x,
                      vqgan_gn_stats *st, int B, int hw) {
  vqgpt_groupnorm_forward(out, st->mean, st->rstd, x, m->w + n->gamma, m->w + n->beta, B, n->c, hw,
                          VQGAN_GROUPS, VQGAN_GN_EPS);
}

static void groupnorm_swish(const vqgan *m, const vqgan_norm *n, float *normed, float *act,
                            const float *x, vqgan_gn_stats *st, int B, int hw) {
  vqgpt_groupnorm_swish_forward(normed, act, st->mean, st->rstd, x, m->w + n->gamma, m->w + n->beta,
                                B, n->c, hw, VQGAN_GROUPS, VQGAN_GN_EPS);
}

void vqgpt_vqgan_norm_swish_forward(const vqgan *m, const vqgan_norm *n, float *out, const float *x,
                                    vqgan_gn_stats *st, int B, int hw) {
  groupnorm(m, n, out, x, st, B, hw);
  vqgpt_swish_forward(out, out, (size_t)B * n->c * hw);
}

void vqgpt_vqgan_resblock_forward(const vqgan *m, const vqgan_resblock *r, float *out,
                                  const float *x, vqgan_resblock_bufs *b, int B, int h, int w,
                                  float *scratch) {
  int hw = h * w;
  size_t n_out = (size_t)B * r->c_out * hw;
  float *s1 = b->s1 ? b->s1 : b->tmp, *s2 = b->s2 ? b->s2 : b->tmp;
  groupnorm_swish(m, &r->norm1, b->n1, s1, x, &b->st1, B, hw);
  vqgpt_vqgan_conv_forward(m, &r->conv1, b->c1, s1, B, h, w, scratch);
  groupnorm_swish(m, &r->norm2, b->n2, s2, b->c1, &b->st2, B, hw);
  // Dropout sits here in the reference; every released model and fixture uses p = 0.
  vqgpt_vqgan_conv_forward(m, &r->conv2, out, s2, B, h, w, scratch);
  if (r->has_shortcut) {
    vqgpt_vqgan_conv_forward(m, &r->nin_shortcut, b->tmp, x, B, h, w, scratch);
    vqgpt_vqgan_add_inplace(out, b->tmp, n_out);
  } else {
    vqgpt_vqgan_add_inplace(out, x, n_out);
  }
}

void vqgpt_vqgan_attn_forward(const vqgan *m, const vqgan_attnblock *a, float *out, const float *x,
                              vqgan_attn_bufs *b, int B, int h, int w, float *scratch) {
  int n = h * w;
  groupnorm(m, &a->norm, b->hn, x, &b->st, B, n);
  vqgpt_vqgan_conv_forward(m, &a->q, b->q, b->hn, B, h, w, scratch);
  vqgpt_vqgan_conv_forward(m, &a->k, b->k, b->hn, B, h, w, scratch);
  vqgpt_vqgan_conv_forward(m, &a->v, b->v, b->hn, B, h, w, scratch);
  if (b->rows)
    vqgpt_attn2d_forward_rows(b->o, b->probs, b->q, b->k, b->v, B, a->c, n);
  else
    vqgpt_attn2d_forward(b->o, b->probs, b->q, b->k, b->v, B, a->c, n);
  vqgpt_vqgan_conv_forward(m, &a->proj_out, out, b->o, B, h, w, scratch);
  vqgpt_vqgan_add_inplace(out, x, (size_t)B * a->c * n);
}

// Codes are compared in chunks of positions so the (n_embed x chunk) score matrix stays small
// even for a 16384-entry codebook and a large grid.
#define QUANT_CHUNK 256

size_t vqgpt_vqgan_quantize_scratch_size(const vqgan *m) {
  return (size_t)m->cfg.n_embed * (QUANT_CHUNK + 1);
}

// GumbelQuantize at inference: the code of each position is the argmax of the logits
// proj(z) = W z + b over the n_embed codes (W: (K, C)), computed chunk by chunk.
static void gumbel_codes(const vqgan *m, const float *z, int B, int N, int32_t *indices,
                         float *scratch) {
  const int K = m->cfg.n_embed, C = m->cfg.embed_dim;
  const float *W = m->w + m->proj_w, *bias = m->w + m->proj_b;
  float *logits = scratch;  // (K, chunk)
  for (int b = 0; b < B; b++) {
    const float *zb = z + (size_t)b * C * N;  // (C, N)
    for (int n0 = 0; n0 < N; n0 += QUANT_CHUNK) {
      int nc = N - n0 < QUANT_CHUNK ? N - n0 : QUANT_CHUNK;
      vqgpt_sgemm(false, false, K, nc, C, 1.0f, W, C, zb + n0, N, 0.0f, logits, nc);
      float best[QUANT_CHUNK];
      int32_t arg[QUANT_CHUNK];
      for (int j = 0; j < nc; j++) {
        best[j] = -FLT_MAX;
        arg[j] = 0;
      }
      for (int k = 0; k < K; k++) {
        const float *row = logits + (size_t)k * nc;
        for (int j = 0; j < nc; j++) {
          float s = row[j] + bias[k];
          if (s > best[j]) {  // strict: ties keep the first index, as torch.argmax
            best[j] = s;
            arg[j] = k;
          }
        }
      }
      for (int j = 0; j < nc; j++) indices[(size_t)b * N + n0 + j] = arg[j];
    }
  }
}

void vqgpt_vqgan_quantize(const vqgan *m, const float *z, int B, int h, int w, int32_t *indices,
                          float *zq, double *loss_out, float *scratch) {
  const int K = m->cfg.n_embed, C = m->cfg.embed_dim, N = h * w;
  if (m->cfg.quantizer == VQGAN_GUMBEL) {
    gumbel_codes(m, z, B, N, indices, scratch);
    if (zq) vqgpt_vqgan_lookup(m, indices, B, h, w, zq);
    if (loss_out) *loss_out = 0;  // the KL term is a training loss; training is not supported
    return;
  }
  const float *E = m->w + m->embedding;  // (K, C)
  float *e2 = scratch;                   // (K)
  float *dots = scratch + K;             // (K, chunk)
  double loss = 0;
  for (int k = 0; k < K; k++) {
    float s = 0;
    for (int c = 0; c < C; c++) s += E[(size_t)k * C + c] * E[(size_t)k * C + c];
    e2[k] = s;
  }
  for (int b = 0; b < B; b++) {
    const float *zb = z + (size_t)b * C * N;  // (C, N)
    for (int n0 = 0; n0 < N; n0 += QUANT_CHUNK) {
      int nc = N - n0 < QUANT_CHUNK ? N - n0 : QUANT_CHUNK;
      vqgpt_sgemm(false, false, K, nc, C, 1.0f, E, C, zb + n0, N, 0.0f, dots, nc);
      // |z|^2 is the same for every code, so the argmin of |e|^2 - 2 z.e decides.
      float best[QUANT_CHUNK];
      int32_t arg[QUANT_CHUNK];
      for (int j = 0; j < nc; j++) {
        best[j] = FLT_MAX;
        arg[j] = 0;
      }
      for (int k = 0; k < K; k++) {
        const float *row = dots + (size_t)k * nc;
        for (int j = 0; j < nc; j++) {
          float d = e2[k] - 2.0f * row[j];
          if (d < best[j]) {  // strict: ties keep the first index, as torch.argmin
            best[j] = d;
            arg[j] = k;
          }
        }
      }
      for (int j = 0; j < nc; j++) indices[(size_t)b * N + n0 + j] = arg[j];
    }
  }
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++)
      for (int n = 0; n < N; n++) {
        size_t i = ((size_t)b * C + c) * N + n;
        float q = E[(size_t)indices[(size_t)b * N + n] * C + c];
        double d = (double)q - z[i];
        loss += d * d;
        if (zq) zq[i] = q;
      }
  // Legacy form: mean((sg[zq]-z)^2) + beta * mean((zq-sg[z])^2); both terms have one value.
  if (loss_out) *loss_out = (1.0 + VQGAN_BETA) * loss / ((double)B * C * N);
}

void vqgpt_vqgan_lookup(const vqgan *m, const int32_t *indices, int B, int h, int w, float *zq) {
  const int C = m->cfg.embed_dim, N = h * w;
  const float *E = m->w + m->embedding;
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++)
      for (int n = 0; n < N; n++)
        zq[((size_t)b * C + c) * N + n] = E[(size_t)indices[(size_t)b * N + n] * C + c];
}

static size_t max_z(size_t a, size_t b) { return a > b ? a : b; }

static void attn_sizes(const vqgan_attnblock *a, int B, int H, int W, vqgan_sizes *s) {
  size_t n = (size_t)(H >> a->level) * (W >> a->level);
  s->attn_cn = max_z(s->attn_cn, (size_t)B * a->c * n);
  s->attn_nn = max_z(s->attn_nn, (size_t)B * n * n);
  s->attn_rows = max_z(s->attn_rows, vqgpt_attn2d_rows_scratch_size(n));
  s->attn_n = max_z(s->attn_n, n);
}

static void coder_attn_sizes(const vqgan *m, const vqgan_coder *cd, int B, int H, int W,
                             vqgan_sizes *s) {
  attn_sizes(&cd->mid_attn_1, B, H, W, s);
  for (int l = 0; l < m->cfg.n_levels; l++)
    if (cd->levels[l].has_attn) attn_sizes(&cd->levels[l].attn[0], B, H, W, s);
}

vqgan_sizes vqgpt_vqgan_forward_sizes(const vqgan *m, int B, int H, int W) {
  vqgan_sizes s = {0, 0, 0, 0, 0};
  for (size_t i = 0; i < m->n_convs; i++) {
    const vqgan_conv *c = m->convs[i];
    int h = H >> c->level, w = W >> c->level;
    int ch = c->s.c_in > c->s.c_out ? c->s.c_in : c->s.c_out;
    s.act = max_z(s.act, (size_t)B * ch * h * w);
    s.scratch = max_z(s.scratch, vqgpt_conv2d_scratch_size(&c->s, h, w));
  }
  coder_attn_sizes(m, &m->enc, B, H, W, &s);
  coder_attn_sizes(m, &m->dec, B, H, W, &s);
  return s;
}
