// Inference: vqgpt_vqgan_encode and vqgpt_vqgan_decode over a handful of reused activation buffers,
// so memory stays at a few times the largest activation whatever the depth of the model.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/memory.h"
#include "core/upsample.h"
#include "stage1_vqgan/vqgan_layers.h"

typedef struct {
  float *a, *b;  // the current activation and the next one; swapped after each layer
  float *p, *q;  // block temporaries
  float *scratch;
  float *mean, *rstd;
  vqgan_resblock_bufs rb;
  vqgan_attn_bufs ab;
} workspace;

// Carves the workspace out of the model's buffer, which is kept between calls: a fresh
// allocation per call would cost a page fault per 4 KiB of activations (over 10% of a pass).
static int ws_alloc(workspace *ws, vqgan *m, int B, int H, int W) {
  memset(ws, 0, sizeof *ws);
  vqgan_sizes s = vqgpt_vqgan_forward_sizes(m, B, H, W);
  size_t scratch = s.scratch > vqgpt_vqgan_quantize_scratch_size(m)
                       ? s.scratch
                       : vqgpt_vqgan_quantize_scratch_size(m);
  size_t sizes[8] = {s.act,
                     s.act,
                     s.act,
                     s.act,
                     scratch,
                     4 * s.attn_cn + s.attn_rows,
                     (size_t)B * VQGAN_GROUPS,
                     (size_t)B * VQGAN_GROUPS};
  size_t total = 0;
  for (int i = 0; i < 8; i++) total += (sizes[i] + 15) / 16 * 16;  // 64-byte aligned pieces
  if (m->workspace_floats < total) {
    char what[96];
    snprintf(what, sizeof what, "a %dx%d VQGAN pass (batch %d)", W, H, B);
    if (vqgpt_memory_check(total * sizeof(float), what)) return -1;
    free(m->workspace);
    m->workspace = aligned_alloc(64, total * sizeof(float));
    m->workspace_floats = m->workspace ? total : 0;
    if (!m->workspace)
      return vqgpt_error("out of memory: a %dx%d VQGAN pass needs %.1f GiB of activations", W, H,
                         total * 4.0 / (1 << 30));
  }
  float *piece[8], *next = m->workspace;
  for (int i = 0; i < 8; i++) {
    piece[i] = next;
    next += (sizes[i] + 15) / 16 * 16;
  }
  ws->a = piece[0];
  ws->b = piece[1];
  ws->p = piece[2];
  ws->q = piece[3];
  ws->scratch = piece[4];
  float *attn = piece[5];
  ws->mean = piece[6];
  ws->rstd = piece[7];
  vqgan_gn_stats st = {ws->mean, ws->rstd};
  // In inference every intermediate of a block may share one buffer (see resblock_forward).
  ws->rb = (vqgan_resblock_bufs){ws->p, ws->p, ws->p, ws->q, st, st, NULL, NULL};
  ws->ab = (vqgan_attn_bufs){ws->p,
                             attn,
                             attn + s.attn_cn,
                             attn + 2 * s.attn_cn,
                             attn + 3 * s.attn_cn,
                             attn + 4 * s.attn_cn,
                             st,
                             true};
  return 0;
}

static void swap(workspace *ws) {
  float *t = ws->a;
  ws->a = ws->b;
  ws->b = t;
}

static void resblock(const vqgan *m, const vqgan_resblock *r, workspace *ws, int B, int h, int w) {
  vqgpt_vqgan_resblock_forward(m, r, ws->b, ws->a, &ws->rb, B, h, w, ws->scratch);
  swap(ws);
}

static void attn(const vqgan *m, const vqgan_attnblock *a, workspace *ws, int B, int h, int w) {
  vqgpt_vqgan_attn_forward(m, a, ws->b, ws->a, &ws->ab, B, h, w, ws->scratch);
  swap(ws);
}

static void conv(const vqgan *m, const vqgan_conv *c, workspace *ws, int B, int h, int w) {
  vqgpt_vqgan_conv_forward(m, c, ws->b, ws->a, B, h, w, ws->scratch);
  swap(ws);
}

static void mid(const vqgan *m, const vqgan_coder *cd, workspace *ws, int B, int h, int w) {
  resblock(m, &cd->mid_block_1, ws, B, h, w);
  attn(m, &cd->mid_attn_1, ws, B, h, w);
  resblock(m, &cd->mid_block_2, ws, B, h, w);
}

static void level_blocks(const vqgan *m, const vqgan_level *l, workspace *ws, int B, int h, int w) {
  for (int j = 0; j < l->n_blocks; j++) {
    resblock(m, &l->blocks[j], ws, B, h, w);
    if (l->has_attn) attn(m, &l->attn[j], ws, B, h, w);
  }
}

static void norm_out(const vqgan *m, const vqgan_coder *cd, workspace *ws, int B, int hw) {
  vqgan_gn_stats st = {ws->mean, ws->rstd};
  vqgpt_vqgan_norm_swish_forward(m, &cd->norm_out, ws->a, ws->a, &st, B, hw);
}

// Leaves the quant_conv output z (B, embed_dim, H/f, W/f) in ws->a.
static void encoder(const vqgan *m, const float *x, workspace *ws, int B, int H, int W) {
  const vqgan_coder *e = &m->enc;
  vqgpt_vqgan_conv_forward(m, &e->conv_in, ws->a, x, B, H, W, ws->scratch);
  int h = H, w = W;
  for (int i = 0; i < m->cfg.n_levels; i++) {
    level_blocks(m, &e->levels[i], ws, B, h, w);
    if (e->levels[i].has_resample) {
      conv(m, &e->levels[i].resample, ws, B, h, w);
      h /= 2;
      w /= 2;
    }
  }
  mid(m, e, ws, B, h, w);
  norm_out(m, e, ws, B, h * w);
  conv(m, &e->conv_out, ws, B, h, w);
  conv(m, &m->quant_conv, ws, B, h, w);
}

// Decodes the quantized latents in ws->a (B, embed_dim, h, w) into x.
static void decoder(const vqgan *m, float *x, workspace *ws, int B, int h, int w) {
  const vqgan_coder *d = &m->dec;
  conv(m, &m->post_quant_conv, ws, B, h, w);
  conv(m, &d->conv_in, ws, B, h, w);
  mid(m, d, ws, B, h, w);
  for (int i = m->cfg.n_levels - 1; i >= 0; i--) {
    level_blocks(m, &d->levels[i], ws, B, h, w);
    if (d->levels[i].has_resample) {
      vqgpt_upsample2x_forward(ws->b, ws->a, B, d->levels[i].blocks[0].c_out, h, w);
      swap(ws);
      h *= 2;
      w *= 2;
      conv(m, &d->levels[i].resample, ws, B, h, w);
    }
  }
  norm_out(m, d, ws, B, h * w);
  vqgpt_vqgan_conv_forward(m, &d->conv_out, x, ws->a, B, h, w, ws->scratch);
}

static int check_size(const vqgan *m, int B, int H, int W) {
  int f = vqgpt_vqgan_factor(m);
  if (B < 1 || H < f || W < f || H % f || W % f)
    return vqgpt_error("image size %dx%d is not a positive multiple of the VQGAN's factor %d", W, H,
                       f);
  return 0;
}

int vqgpt_vqgan_encode(vqgan *m, const float *x, int B, int H, int W, int32_t *indices, float *z,
                       float *qloss) {
  if (check_size(m, B, H, W)) return -1;
  workspace ws;
  if (ws_alloc(&ws, m, B, H, W)) return -1;
  int f = vqgpt_vqgan_factor(m), h = H / f, w = W / f;
  encoder(m, x, &ws, B, H, W);
  double loss;
  vqgpt_vqgan_quantize(m, ws.a, B, h, w, indices, NULL, &loss, ws.scratch);
  if (z) memcpy(z, ws.a, (size_t)B * m->cfg.embed_dim * h * w * sizeof(float));
  if (qloss) *qloss = (float)loss;
  return 0;
}

int vqgpt_vqgan_decode(vqgan *m, const int32_t *indices, int B, int h, int w, float *x) {
  int f = vqgpt_vqgan_factor(m);
  if (B < 1 || h < 1 || w < 1 || h > (1 << 20) / f || w > (1 << 20) / f)
    return vqgpt_error("invalid code grid %dx%d", w, h);
  size_t n = (size_t)B * h * w;
  for (size_t i = 0; i < n; i++)
    if (indices[i] < 0 || indices[i] >= m->cfg.n_embed)
      return vqgpt_error("code %d at position %zu is outside the codebook [0, %d)", indices[i], i,
                         m->cfg.n_embed);
  workspace ws;
  if (ws_alloc(&ws, m, B, h * f, w * f)) return -1;
  vqgpt_vqgan_lookup(m, indices, B, h, w, ws.a);
  decoder(m, x, &ws, B, h, w);
  return 0;
}
