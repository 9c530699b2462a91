#include "stage1_vqgan/vqgan_tape.h"

#include <stdlib.h>
#include <string.h>

#include "core/activation.h"
#include "core/attention2d.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/groupnorm.h"
#include "core/upsample.h"

typedef enum { OP_CONV, OP_RESBLOCK, OP_ATTN, OP_UPSAMPLE, OP_NORM_SWISH } op_kind;

typedef struct {
  op_kind kind;
  const void *layer;  // vqgan_conv, vqgan_resblock, vqgan_attnblock or vqgan_norm
  const float *in;    // NULL: the tape's input x
  float *out;
  int c_in, h, w;  // input channels and spatial size
  vqgan_resblock_bufs rb;
  vqgan_attn_bufs ab;
  float *normed;  // OP_NORM_SWISH: groupnorm output, kept for the swish backward
  vqgan_gn_stats st;
} tape_op;

struct vqgan_tape {
  const vqgan *m;
  int B, H, W, h, w;
  tape_op *ops;
  size_t n_ops, cap_ops, n_enc;  // ops [0, n_enc) are the encoder
  const float *x;
  float *z, *zq, *xrec;
  int32_t *indices;
  float *tmp, *g_a, *g_b, *gt1, *gt2, *scratch;
  float *adq, *adk, *adv, *attn_scratch;
  void **allocs;
  size_t n_allocs, cap_allocs, bytes;
  int failed;
};

static float *alloc_floats(vqgan_tape *t, size_t n) {
  if (t->failed) return NULL;
  if (t->n_allocs == t->cap_allocs) {
    size_t cap = t->cap_allocs ? t->cap_allocs * 2 : 256;
    void **p = realloc(t->allocs, cap * sizeof *p);
    if (!p) {
      t->failed = 1;
      return NULL;
    }
    t->allocs = p;
    t->cap_allocs = cap;
  }
  // The whole tape counts against the memory budget: refused before training starts.
  float *x =
      t->bytes + n * sizeof(float) > vqgpt_memory_budget() ? NULL : malloc((n ? n : 1) * sizeof *x);
  if (!x) {
    t->failed = 1;
    return NULL;
  }
  t->allocs[t->n_allocs++] = x;
  t->bytes += n * sizeof *x;
  return x;
}

static tape_op *push(vqgan_tape *t, op_kind kind, const void *layer, const float *in, int c_in,
                     int h, int w, size_t out_floats) {
  if (t->failed) return NULL;
  if (t->n_ops == t->cap_ops) {
    size_t cap = t->cap_ops ? t->cap_ops * 2 : 128;
    tape_op *p = realloc(t->ops, cap * sizeof *p);
    if (!p) {
      t->failed = 1;
      return NULL;
    }
    t->ops = p;
    t->cap_ops = cap;
  }
  tape_op *op = &t->ops[t->n_ops++];
  memset(op, 0, sizeof *op);
  *op = (tape_op){.kind = kind, .layer = layer, .in = in, .c_in = c_in, .h = h, .w = w};
  op->out = alloc_floats(t, out_floats);
  return op;
}

static vqgan_gn_stats new_stats(vqgan_tape *t) {
  vqgan_gn_stats s = {alloc_floats(t, (size_t)t->B * VQGAN_GROUPS),
                      alloc_floats(t, (size_t)t->B * VQGAN_GROUPS)};
  return s;
}

static const float *last_out(const vqgan_tape *t) {
  return t->n_ops ? t->ops[t->n_ops - 1].out : NULL;
}

static void plan_conv(vqgan_tape *t, const vqgan_conv *c, const float *in, int h, int w) {
  int ho = vqgpt_conv2d_out_h(&c->s, h), wo = vqgpt_conv2d_out_w(&c->s, w);
  push(t, OP_CONV, c, in, c->s.c_in, h, w, (size_t)t->B * c->s.c_out * ho * wo);
}

static void plan_resblock(vqgan_tape *t, const vqgan_resblock *r, int h, int w) {
  size_t hw = (size_t)h * w, n_in = (size_t)t->B * r->c_in * hw,
         n_out = (size_t)t->B * r->c_out * hw;
  tape_op *op = push(t, OP_RESBLOCK, r, last_out(t), r->c_in, h, w, n_out);
  if (!op) return;
  // The swish outputs are kept: the backward needs them as the convs' inputs, and keeping
  // them costs less than recomputing the exp over every element.
  op->rb = (vqgan_resblock_bufs){
      alloc_floats(t, n_in), alloc_floats(t, n_out), alloc_floats(t, n_out), t->tmp, new_stats(t),
      new_stats(t),          alloc_floats(t, n_in),  alloc_floats(t, n_out)};
}

static void plan_attn(vqgan_tape *t, const vqgan_attnblock *a, int h, int w) {
  size_t n = (size_t)h * w, cn = (size_t)t->B * a->c * n;
  tape_op *op = push(t, OP_ATTN, a, last_out(t), a->c, h, w, cn);
  if (!op) return;
  op->ab = (vqgan_attn_bufs){alloc_floats(t, cn), alloc_floats(t, cn),
                             alloc_floats(t, cn), alloc_floats(t, cn),
                             alloc_floats(t, cn), alloc_floats(t, (size_t)t->B * n * n),
                             new_stats(t)};
}

static void plan_norm_swish(vqgan_tape *t, const vqgan_norm *nm, int h, int w) {
  size_t n = (size_t)t->B * nm->c * h * w;
  tape_op *op = push(t, OP_NORM_SWISH, nm, last_out(t), nm->c, h, w, n);
  if (!op) return;
  op->normed = alloc_floats(t, n);
  op->st = new_stats(t);
}

static void plan_mid(vqgan_tape *t, const vqgan_coder *cd, int h, int w) {
  plan_resblock(t, &cd->mid_block_1, h, w);
  plan_attn(t, &cd->mid_attn_1, h, w);
  plan_resblock(t, &cd->mid_block_2, h, w);
}

static void plan_level(vqgan_tape *t, const vqgan_level *l, int h, int w) {
  for (int j = 0; j < l->n_blocks; j++) {
    plan_resblock(t, &l->blocks[j], h, w);
    if (l->has_attn) plan_attn(t, &l->attn[j], h, w);
  }
}

static void plan(vqgan_tape *t) {
  const vqgan *m = t->m;
  const vqgan_coder *e = &m->enc, *d = &m->dec;
  int h = t->H, w = t->W;
  plan_conv(t, &e->conv_in, NULL, h, w);
  for (int i = 0; i < m->cfg.n_levels; i++) {
    plan_level(t, &e->levels[i], h, w);
    if (e->levels[i].has_resample) {
      plan_conv(t, &e->levels[i].resample, last_out(t), h, w);
      h /= 2;
      w /= 2;
    }
  }
  plan_mid(t, e, h, w);
  plan_norm_swish(t, &e->norm_out, h, w);
  plan_conv(t, &e->conv_out, last_out(t), h, w);
  plan_conv(t, &m->quant_conv, last_out(t), h, w);
  t->n_enc = t->n_ops;
  t->z = (float *)last_out(t);
  size_t nz = (size_t)t->B * m->cfg.embed_dim * h * w;
  t->zq = alloc_floats(t, nz);
  t->indices = (int32_t *)alloc_floats(t, (size_t)t->B * h * w);
  plan_conv(t, &m->post_quant_conv, t->zq, h, w);
  plan_conv(t, &d->conv_in, last_out(t), h, w);
  plan_mid(t, d, h, w);
  for (int i = m->cfg.n_levels - 1; i >= 0; i--) {
    plan_level(t, &d->levels[i], h, w);
    if (d->levels[i].has_resample) {
      int c = d->levels[i].blocks[0].c_out;
      push(t, OP_UPSAMPLE, NULL, last_out(t), c, h, w, (size_t)t->B * c * 4 * h * w);
      h *= 2;
      w *= 2;
      plan_conv(t, &d->levels[i].resample, last_out(t), h, w);
    }
  }
  plan_norm_swish(t, &d->norm_out, h, w);
  plan_conv(t, &d->conv_out, last_out(t), h, w);
  t->xrec = (float *)last_out(t);
}

vqgan_tape *vqgpt_vqgan_tape_new(const vqgan *m, int B, int H, int W) {
  int f = vqgpt_vqgan_factor(m);
  if (B < 1 || H < f || W < f || H % f || W % f) {
    vqgpt_error("training size %dx%d is not a positive multiple of the VQGAN's factor %d", W, H, f);
    return NULL;
  }
  vqgan_tape *t = calloc(1, sizeof *t);
  if (!t) {
    vqgpt_error("out of memory");
    return NULL;
  }
  *t = (vqgan_tape){.m = m, .B = B, .H = H, .W = W, .h = H / f, .w = W / f};
  vqgan_sizes s = vqgpt_vqgan_forward_sizes(m, B, H, W);
  t->tmp = alloc_floats(t, s.act);
  t->g_a = alloc_floats(t, s.act);
  t->g_b = alloc_floats(t, s.act);
  t->gt1 = alloc_floats(t, s.act);
  t->gt2 = alloc_floats(t, s.act);
  t->scratch = alloc_floats(t, s.scratch > vqgpt_vqgan_quantize_scratch_size(m)
                                   ? s.scratch
                                   : vqgpt_vqgan_quantize_scratch_size(m));
  t->adq = alloc_floats(t, s.attn_cn);
  t->adk = alloc_floats(t, s.attn_cn);
  t->adv = alloc_floats(t, s.attn_cn);
  t->attn_scratch = alloc_floats(t, vqgpt_attn2d_scratch_size((int)s.attn_n));
  plan(t);
  if (t->failed) {
    vqgpt_vqgan_tape_free(t);
    vqgpt_error(
        "out of memory planning VQGAN training at batch %d, %dx%d (memory budget %.3g GiB; "
        "VQGPT_MAX_MEMORY=GIB raises it)",
        B, W, H, vqgpt_memory_budget() / 1073741824.0);
    return NULL;
  }
  return t;
}

void vqgpt_vqgan_tape_free(vqgan_tape *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n_allocs; i++) free(t->allocs[i]);
  free(t->allocs);
  free(t->ops);
  free(t);
}

size_t vqgpt_vqgan_tape_bytes(const vqgan_tape *t) { return t->bytes; }
const float *vqgpt_vqgan_tape_xrec(const vqgan_tape *t) { return t->xrec; }
const float *vqgpt_vqgan_tape_z(const vqgan_tape *t) { return t->z; }
const float *vqgpt_vqgan_tape_zq(const vqgan_tape *t) { return t->zq; }
const int32_t *vqgpt_vqgan_tape_indices(const vqgan_tape *t) { return t->indices; }
const float *vqgpt_vqgan_tape_last_input(const vqgan_tape *t) { return t->ops[t->n_ops - 1].in; }

static const float *op_input(const vqgan_tape *t, const tape_op *op) {
  return op->in ? op->in : t->x;
}

static void run_forward(vqgan_tape *t, tape_op *op) {
  const vqgan *m = t->m;
  const float *in = op_input(t, op);
  switch (op->kind) {
    case OP_CONV:
      vqgpt_vqgan_conv_forward(m, op->layer, op->out, in, t->B, op->h, op->w, t->scratch);
      break;
    case OP_RESBLOCK:
      vqgpt_vqgan_resblock_forward(m, op->layer, op->out, in, &op->rb, t->B, op->h, op->w,
                                   t->scratch);
      break;
    case OP_ATTN:
      vqgpt_vqgan_attn_forward(m, op->layer, op->out, in, &op->ab, t->B, op->h, op->w, t->scratch);
      break;
    case OP_UPSAMPLE:
      vqgpt_upsample2x_forward(op->out, in, t->B, op->c_in, op->h, op->w);
      break;
    case OP_NORM_SWISH: {
      const vqgan_norm *nm = op->layer;
      vqgpt_groupnorm_swish_forward(op->normed, op->out, op->st.mean, op->st.rstd, in,
                                    m->w + nm->gamma, m->w + nm->beta, t->B, nm->c, op->h * op->w,
                                    VQGAN_GROUPS, VQGAN_GN_EPS);
      break;
    }
  }
}

int vqgpt_vqgan_tape_forward(vqgan_tape *t, const float *x, double *qloss) {
  t->x = x;
  for (size_t i = 0; i < t->n_enc; i++) run_forward(t, &t->ops[i]);
  vqgpt_vqgan_quantize(t->m, t->z, t->B, t->h, t->w, t->indices, t->zq, qloss, t->scratch);
  for (size_t i = t->n_enc; i < t->n_ops; i++) run_forward(t, &t->ops[i]);
  return 0;
}

static void conv_backward(const vqgan_tape *t, const vqgan_conv *c, float *din, const float *dout,
                          const float *in, int h, int w, float *grad) {
  vqgpt_conv2d_backward(din, grad + c->w, grad + c->b, dout, in, t->m->w + c->w, &c->s, t->B, h, w,
                        t->scratch);
}

static void norm_backward(const vqgan_tape *t, const vqgan_norm *nm, float *din, const float *dout,
                          const float *in, const vqgan_gn_stats *st, int hw, float *grad) {
  vqgpt_groupnorm_backward(din, grad + nm->gamma, grad + nm->beta, dout, in, st->mean, st->rstd,
                           t->m->w + nm->gamma, t->B, nm->c, hw, VQGAN_GROUPS);
}

// din = d/d(in) of swish(norm(in)), from the saved norm output.
static void norm_swish_backward(const vqgan_tape *t, const vqgan_norm *nm, float *din,
                                const float *dout, const float *normed, const float *in,
                                const vqgan_gn_stats *st, int hw, float *grad) {
  vqgpt_groupnorm_swish_backward(din, grad + nm->gamma, grad + nm->beta, dout, normed, in, st->mean,
                                 st->rstd, t->m->w + nm->gamma, t->B, nm->c, hw, VQGAN_GROUPS);
}

// out = conv2(swish(n2)) + shortcut(x), n2 = norm2(c1), c1 = conv1(swish(n1)), n1 = norm1(x).
static void resblock_backward(vqgan_tape *t, const tape_op *op, float *dx, const float *dout,
                              float *grad) {
  const vqgan_resblock *r = op->layer;
  const vqgan_resblock_bufs *b = &op->rb;
  const float *x = op_input(t, op);
  int hw = op->h * op->w;
  size_t n_in = (size_t)t->B * r->c_in * hw;
  conv_backward(t, &r->conv2, t->gt1, dout, b->s2, op->h, op->w, grad);
  norm_swish_backward(t, &r->norm2, t->gt2, t->gt1, b->n2, b->c1, &b->st2, hw, grad);
  conv_backward(t, &r->conv1, t->gt1, t->gt2, b->s1, op->h, op->w, grad);
  norm_swish_backward(t, &r->norm1, dx, t->gt1, b->n1, x, &b->st1, hw, grad);
  if (r->has_shortcut) {
    conv_backward(t, &r->nin_shortcut, t->gt2, dout, x, op->h, op->w, grad);
    vqgpt_vqgan_add_inplace(dx, t->gt2, n_in);
  } else {
    vqgpt_vqgan_add_inplace(dx, dout, n_in);
  }
}

// out = x + proj(attn(q(hn), k(hn), v(hn))), hn = norm(x).
static void attn_backward(vqgan_tape *t, const tape_op *op, float *dx, const float *dout,
                          float *grad) {
  const vqgan_attnblock *a = op->layer;
  const vqgan_attn_bufs *b = &op->ab;
  const float *x = op_input(t, op);
  int n = op->h * op->w;
  size_t cn = (size_t)t->B * a->c * n;
  conv_backward(t, &a->proj_out, t->gt1, dout, b->o, op->h, op->w, grad);
  vqgpt_attn2d_backward(t->adq, t->adk, t->adv, t->gt1, b->q, b->k, b->v, b->probs, t->B, a->c, n,
                        t->attn_scratch);
  conv_backward(t, &a->q, t->gt1, t->adq, b->hn, op->h, op->w, grad);
  conv_backward(t, &a->k, t->gt2, t->adk, b->hn, op->h, op->w, grad);
  vqgpt_vqgan_add_inplace(t->gt1, t->gt2, cn);
  conv_backward(t, &a->v, t->gt2, t->adv, b->hn, op->h, op->w, grad);
  vqgpt_vqgan_add_inplace(t->gt1, t->gt2, cn);
  norm_backward(t, &a->norm, dx, t->gt1, x, &b->st, n, grad);
  vqgpt_vqgan_add_inplace(dx, dout, cn);
}

// din may be NULL for the tape's first op (no gradient w.r.t. the image is needed).
static void run_backward(vqgan_tape *t, const tape_op *op, float *din, const float *dout,
                         float *grad) {
  const float *in = op_input(t, op);
  switch (op->kind) {
    case OP_CONV:
      conv_backward(t, op->layer, din, dout, in, op->h, op->w, grad);
      break;
    case OP_RESBLOCK:
      resblock_backward(t, op, din, dout, grad);
      break;
    case OP_ATTN:
      attn_backward(t, op, din, dout, grad);
      break;
    case OP_UPSAMPLE:
      vqgpt_upsample2x_backward(din, dout, t->B, op->c_in, op->h, op->w);
      break;
    case OP_NORM_SWISH: {
      const vqgan_norm *nm = op->layer;
      norm_swish_backward(t, nm, din, dout, op->normed, in, &op->st, op->h * op->w, grad);
      break;
    }
  }
}

// Runs ops [lo, hi) in reverse; *g holds the gradient of op hi-1's output and on return the
// gradient of op lo's input (unless lo is the tape's first op).
static void backward_range(vqgan_tape *t, size_t lo, size_t hi, float **g, float **spare,
                           float *grad) {
  for (size_t i = hi; i-- > lo;) {
    const tape_op *op = &t->ops[i];
    float *din = (i == 0) ? NULL : *spare;
    run_backward(t, op, din, *g, grad);
    if (din) {
      *spare = *g;
      *g = din;
    }
  }
}

int vqgpt_vqgan_tape_backward(vqgan_tape *t, const float *dxrec, float qloss_weight, bool legacy,
                              float *grad) {
  const vqgan *m = t->m;
  size_t nx = (size_t)t->B * m->cfg.out_ch * t->H * t->W;
  float *g = t->g_a, *spare = t->g_b;
  memcpy(g, dxrec, nx * sizeof *g);
  backward_range(t, t->n_enc, t->n_ops, &g, &spare, grad);
  // Straight-through: the decoder's gradient w.r.t. zq passes to z unchanged. The legacy loss
  // mean((sg[zq]-z)^2) + beta * mean((zq-sg[z])^2) adds 2(z-zq)/N to z and
  // 2 beta (zq-z)/N to the chosen codebook rows; the corrected form swaps the two weights.
  const int C = m->cfg.embed_dim, N = t->h * t->w;
  size_t nz = (size_t)t->B * C * N;
  float scale = 2.0f * qloss_weight / (float)nz;
  float w_commit = legacy ? 1.0f : VQGAN_BETA, w_book = legacy ? VQGAN_BETA : 1.0f;
  float *demb = grad + m->embedding;
  for (int b = 0; b < t->B; b++)
    for (int c = 0; c < C; c++)
      for (int n = 0; n < N; n++) {
        size_t i = ((size_t)b * C + c) * N + n;
        float diff = t->z[i] - t->zq[i];
        g[i] += scale * w_commit * diff;
        demb[(size_t)t->indices[(size_t)b * N + n] * C + c] -= scale * w_book * diff;
      }
  backward_range(t, 0, t->n_enc, &g, &spare, grad);
  return 0;
}
