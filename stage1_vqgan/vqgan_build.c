// Building the VQGAN's layer structure from a config, and moving its parameters in and out:
// reference initialisation, safetensors load (name + shape checked) and save.
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "stage1_vqgan/vqgan_layers.h"
#include "weights/safetensors.h"

// 2^31 floats (8 GiB): 20 times the released f16/16384 model; a config beyond it is a mistake.
#define VQGAN_MAX_PARAMS ((size_t)1 << 31)

typedef struct {
  vqgan *m;
  size_t cap_params, cap_convs;
  int failed;
  bool decoder;  // the part being built
} builder;

static size_t add_param(builder *b, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static size_t add_param(builder *b, int ndim, const int64_t *shape, const char *fmt, ...) {
  vqgan *m = b->m;
  if (m->n_params == b->cap_params) {
    size_t cap = b->cap_params ? b->cap_params * 2 : 256;
    vqgan_param *p = realloc(m->params, cap * sizeof *p);
    if (!p) {
      b->failed = 1;
      return 0;
    }
    m->params = p;
    b->cap_params = cap;
  }
  vqgan_param *p = &m->params[m->n_params++];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->name, sizeof p->name, fmt, ap);
  va_end(ap);
  p->ndim = ndim;
  p->numel = 1;
  for (int i = 0; i < ndim; i++) {
    p->shape[i] = shape[i];
    p->numel *= (size_t)shape[i];
  }
  p->offset = m->n_floats;
  m->n_floats += p->numel;
  return p->offset;
}

static void add_conv(builder *b, vqgan_conv *c, int c_in, int c_out, int k, int level,
                     const char *prefix) {
  c->s = vqgpt_conv2d_same(c_in, c_out, k);
  c->level = level;
  c->decoder = b->decoder;
  int64_t ws[4] = {c_out, c_in, k, k}, bs[1] = {c_out};
  c->w = add_param(b, 4, ws, "%s.weight", prefix);
  c->b = add_param(b, 1, bs, "%s.bias", prefix);
  vqgan *m = b->m;
  if (m->n_convs == b->cap_convs) {
    size_t cap = b->cap_convs ? b->cap_convs * 2 : 128;
    vqgan_conv **p = realloc(m->convs, cap * sizeof *p);
    if (!p) {
      b->failed = 1;
      return;
    }
    m->convs = p;
    b->cap_convs = cap;
  }
  m->convs[m->n_convs++] = c;
}

static void add_norm(builder *b, vqgan_norm *n, int c, const char *prefix) {
  int64_t s[1] = {c};
  n->c = c;
  n->gamma = add_param(b, 1, s, "%s.weight", prefix);
  n->beta = add_param(b, 1, s, "%s.bias", prefix);
}

static void add_resblock(builder *b, vqgan_resblock *r, int c_in, int c_out, int level,
                         const char *prefix) {
  char name[96];
  r->c_in = c_in;
  r->c_out = c_out;
  r->level = level;
  snprintf(name, sizeof name, "%s.norm1", prefix);
  add_norm(b, &r->norm1, c_in, name);
  snprintf(name, sizeof name, "%s.conv1", prefix);
  add_conv(b, &r->conv1, c_in, c_out, 3, level, name);
  snprintf(name, sizeof name, "%s.norm2", prefix);
  add_norm(b, &r->norm2, c_out, name);
  snprintf(name, sizeof name, "%s.conv2", prefix);
  add_conv(b, &r->conv2, c_out, c_out, 3, level, name);
  r->has_shortcut = c_in != c_out;
  if (r->has_shortcut) {
    snprintf(name, sizeof name, "%s.nin_shortcut", prefix);
    add_conv(b, &r->nin_shortcut, c_in, c_out, 1, level, name);
  }
}

static void add_attnblock(builder *b, vqgan_attnblock *a, int c, int level, const char *prefix) {
  char name[96];
  a->c = c;
  a->level = level;
  snprintf(name, sizeof name, "%s.norm", prefix);
  add_norm(b, &a->norm, c, name);
  vqgan_conv *convs[4] = {&a->q, &a->k, &a->v, &a->proj_out};
  const char *names[4] = {"q", "k", "v", "proj_out"};
  for (int i = 0; i < 4; i++) {
    snprintf(name, sizeof name, "%s.%s", prefix, names[i]);
    add_conv(b, convs[i], c, c, 1, level, name);
  }
}

static int level_has_attn(const vqgan_config *c, int res) {
  for (int i = 0; i < c->n_attn; i++)
    if (c->attn_resolutions[i] == res) return 1;
  return 0;
}

static int alloc_level(vqgan_level *l, int n_blocks) {
  l->n_blocks = n_blocks;
  l->blocks = calloc((size_t)n_blocks + 1, sizeof *l->blocks);
  l->attn = calloc((size_t)n_blocks + 1, sizeof *l->attn);
  return l->blocks && l->attn ? 0 : -1;
}

static void add_mid(builder *b, vqgan_coder *cd, int c, int level, const char *prefix) {
  char name[96];
  snprintf(name, sizeof name, "%s.mid.block_1", prefix);
  add_resblock(b, &cd->mid_block_1, c, c, level, name);
  snprintf(name, sizeof name, "%s.mid.attn_1", prefix);
  add_attnblock(b, &cd->mid_attn_1, c, level, name);
  snprintf(name, sizeof name, "%s.mid.block_2", prefix);
  add_resblock(b, &cd->mid_block_2, c, c, level, name);
}

// The n residual blocks of level i (block_in -> block_out, then block_out), each followed by
// attention when the level has it: {prefix}.{i}.block.{j} and {prefix}.{i}.attn.{j}. Returns
// the channels after them (block_in when n is 0).
static int add_level_blocks(builder *b, vqgan_level *l, int n, const char *prefix, int i,
                            int block_in, int block_out) {
  char name[96];
  for (int j = 0; j < n; j++) {
    snprintf(name, sizeof name, "%s.%d.block.%d", prefix, i, j);
    add_resblock(b, &l->blocks[j], j ? block_out : block_in, block_out, i, name);
    if (l->has_attn) {
      snprintf(name, sizeof name, "%s.%d.attn.%d", prefix, i, j);
      add_attnblock(b, &l->attn[j], block_out, i, name);
    }
  }
  return n > 0 ? block_out : block_in;
}

// Mirrors taming.modules.diffusionmodules.model.Encoder.__init__.
static void build_encoder(builder *b, const vqgan_config *c) {
  vqgan_coder *e = &b->m->enc;
  char name[96];
  add_conv(b, &e->conv_in, c->in_channels, c->ch, 3, 0, "encoder.conv_in");
  int res = c->resolution, block_in = c->ch;
  for (int i = 0; i < c->n_levels; i++) {
    vqgan_level *l = &e->levels[i];
    if (alloc_level(l, c->num_res_blocks)) {
      b->failed = 1;
      return;
    }
    block_in = c->ch * (i == 0 ? 1 : c->ch_mult[i - 1]);
    int block_out = c->ch * c->ch_mult[i];
    l->has_attn = level_has_attn(c, res);
    block_in = add_level_blocks(b, l, c->num_res_blocks, "encoder.down", i, block_in, block_out);
    l->has_resample = i != c->n_levels - 1;
    if (l->has_resample) {
      snprintf(name, sizeof name, "encoder.down.%d.downsample.conv", i);
      add_conv(b, &l->resample, block_in, block_in, 3, i, name);
      // The reference pads (left 0, right 1, top 0, bottom 1) and convolves with stride 2.
      l->resample.s.stride = 2;
      l->resample.s.pad_top = l->resample.s.pad_left = 0;
      l->resample.s.pad_bottom = l->resample.s.pad_right = 1;
      res /= 2;
    }
  }
  int top = c->n_levels - 1;
  add_mid(b, e, block_in, top, "encoder");
  add_norm(b, &e->norm_out, block_in, "encoder.norm_out");
  add_conv(b, &e->conv_out, block_in, c->z_channels, 3, top, "encoder.conv_out");
}

// Mirrors taming.modules.diffusionmodules.model.Decoder.__init__.
static void build_decoder(builder *b, const vqgan_config *c) {
  vqgan_coder *d = &b->m->dec;
  char name[96];
  int top = c->n_levels - 1;
  int block_in = c->ch * c->ch_mult[top];
  int res = c->resolution >> top;
  add_conv(b, &d->conv_in, c->z_channels, block_in, 3, top, "decoder.conv_in");
  add_mid(b, d, block_in, top, "decoder");
  for (int i = top; i >= 0; i--) {
    vqgan_level *l = &d->levels[i];
    if (alloc_level(l, c->num_res_blocks + 1)) {
      b->failed = 1;
      return;
    }
    int block_out = c->ch * c->ch_mult[i];
    l->has_attn = level_has_attn(c, res);
    block_in = add_level_blocks(b, l, c->num_res_blocks + 1, "decoder.up", i, block_in, block_out);
    l->has_resample = i != 0;
    if (l->has_resample) {
      snprintf(name, sizeof name, "decoder.up.%d.upsample.conv", i);
      // Applied after nearest 2x upsampling, so its input is one level finer.
      add_conv(b, &l->resample, block_in, block_in, 3, i - 1, name);
      res *= 2;
    }
  }
  add_norm(b, &d->norm_out, block_in, "decoder.norm_out");
  add_conv(b, &d->conv_out, block_in, c->out_ch, 3, 0, "decoder.conv_out");
}

static void free_coder(vqgan_coder *cd) {
  for (int i = 0; i < VQGAN_MAX_LEVELS; i++) {
    free(cd->levels[i].blocks);
    free(cd->levels[i].attn);
  }
}

void vqgpt_vqgan_free(vqgan *m) {
  if (!m) return;
  free_coder(&m->enc);
  free_coder(&m->dec);
  free(m->params);
  free(m->convs);
  free(m->w);
  free(m->workspace);
  free(m);
}

static vqgan *build(const vqgan_config *cfg) {
  vqgan *m = calloc(1, sizeof *m);
  if (!m) {
    vqgpt_error("out of memory");
    return NULL;
  }
  m->cfg = *cfg;
  builder b = {.m = m};
  int top = cfg->n_levels - 1;
  build_encoder(&b, cfg);
  add_conv(&b, &m->quant_conv, cfg->z_channels, cfg->embed_dim, 1, top, "quant_conv");
  b.decoder = true;
  build_decoder(&b, cfg);
  add_conv(&b, &m->post_quant_conv, cfg->embed_dim, cfg->z_channels, 1, top, "post_quant_conv");
  int64_t es[2] = {cfg->n_embed, cfg->embed_dim};
  if (cfg->quantizer == VQGAN_GUMBEL) {
    // Not a vqgan_conv: its (B, n_embed, h, w) output is never stored whole (vqgpt_vqgan_quantize).
    int64_t ps[4] = {cfg->n_embed, cfg->embed_dim, 1, 1}, pb[1] = {cfg->n_embed};
    m->proj_w = add_param(&b, 4, ps, "quantize.proj.weight");
    m->proj_b = add_param(&b, 1, pb, "quantize.proj.bias");
    m->embedding = add_param(&b, 2, es, "quantize.embed.weight");
  } else {
    m->embedding = add_param(&b, 2, es, "quantize.embedding.weight");
  }
  if (!b.failed && m->n_floats > VQGAN_MAX_PARAMS) {
    vqgpt_error("the VQGAN config describes %zu parameters, more than the %zu supported",
                m->n_floats, (size_t)VQGAN_MAX_PARAMS);
    vqgpt_vqgan_free(m);
    return NULL;
  }
  if (!b.failed) m->w = calloc(m->n_floats, sizeof(float));
  if (b.failed || !m->w) {
    vqgpt_vqgan_free(m);
    vqgpt_error("out of memory building the VQGAN");
    return NULL;
  }
  return m;
}

static void fill_uniform_range(float *x, size_t n, float bound, uint64_t *rng) {
  for (size_t i = 0; i < n; i++)
    x[i] = (float)((2.0 * vqgpt_rng_uniform_double(rng) - 1.0) * bound);
}

// PyTorch's defaults: conv weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)); GroupNorm
// weight 1, bias 0; the codebook U(-1/n_embed, 1/n_embed) as VectorQuantizer2 sets it.
vqgan *vqgpt_vqgan_create(const vqgan_config *cfg, uint64_t *rng) {
  vqgan *m = build(cfg);
  if (!m) return NULL;
  for (size_t i = 0; i < m->n_params; i++) {
    const vqgan_param *p = &m->params[i];
    float *x = m->w + p->offset;
    if (p->ndim == 4) {
      float bound = 1.0f / sqrtf((float)(p->shape[1] * p->shape[2] * p->shape[3]));
      fill_uniform_range(x, p->numel, bound, rng);
      const vqgan_param *bias = &m->params[i + 1];  // registered right after its weight
      fill_uniform_range(m->w + bias->offset, bias->numel, bound, rng);
      i++;
    } else if (p->ndim == 1) {  // a GroupNorm pair: weight then bias
      for (size_t k = 0; k < p->numel; k++) x[k] = 1.0f;
      memset(m->w + m->params[i + 1].offset, 0, m->params[i + 1].numel * sizeof(float));
      i++;
    } else {
      fill_uniform_range(x, p->numel, 1.0f / (float)cfg->n_embed, rng);
    }
  }
  return m;
}

// What a VQGAN file may hold beside the model: a training checkpoint's optimizer state and
// discriminator (vqgpt_vqgan_trainer_save), which a plain load leaves.
static const char *const VQGAN_FILE_EXTRAS[] = {"opt.*", "loss.discriminator.*", NULL};

vqgan *vqgpt_vqgan_load(const char *path) {
  st_file f;
  if (vqgpt_st_open(&f, path)) return NULL;
  vqgan_config cfg;
  vqgan *m = NULL;
  if (vqgpt_st_check_format(&f, "taming-vqgan", "a VQGAN") == 0 &&
      vqgpt_vqgan_config_parse(&cfg, vqgpt_st_meta(&f, "config"), path) == 0 && (m = build(&cfg))) {
    int rc = 0;
    for (size_t i = 0; i < m->n_params && !rc; i++) {
      const vqgan_param *p = &m->params[i];
      rc = vqgpt_st_read_weights(&f, p->name, m->w + p->offset, p->ndim, p->shape);
    }
    if (rc || vqgpt_st_check_all_used(&f, VQGAN_FILE_EXTRAS)) {
      vqgpt_vqgan_free(m);
      m = NULL;
    }
  }
  vqgpt_st_close(&f);
  return m;
}

static int append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int append(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= cap - *len) return -1;
  *len += (size_t)n;
  return 0;
}

static int append_list(char *buf, size_t cap, size_t *len, const int *v, int n) {
  int rc = append(buf, cap, len, "[");
  for (int i = 0; i < n && !rc; i++) rc = append(buf, cap, len, i ? ", %d" : "%d", v[i]);
  return rc ? rc : append(buf, cap, len, "]");
}

int vqgpt_vqgan_config_json(const vqgan_config *c, char *buf, size_t cap) {
  size_t len = 0;
  int rc = append(buf, cap, &len,
                  "{%s\"embed_dim\": %d, \"n_embed\": %d, \"ddconfig\": {\"double_z\": false, "
                  "\"z_channels\": %d, \"resolution\": %d, \"in_channels\": %d, \"out_ch\": %d, "
                  "\"ch\": %d, \"ch_mult\": ",
                  c->quantizer == VQGAN_GUMBEL ? "\"quantizer\": \"gumbel\", " : "", c->embed_dim,
                  c->n_embed, c->z_channels, c->resolution, c->in_channels, c->out_ch, c->ch);
  rc = rc ? rc : append_list(buf, cap, &len, c->ch_mult, c->n_levels);
  rc = rc ? rc
          : append(buf, cap, &len,
                   ", \"num_res_blocks\": %d, \"attn_resolutions\": ", c->num_res_blocks);
  rc = rc ? rc : append_list(buf, cap, &len, c->attn_resolutions, c->n_attn);
  return rc ? rc : append(buf, cap, &len, ", \"dropout\": 0.0}}");
}

int vqgpt_vqgan_write_tensors(const vqgan *m, st_writer *w) {
  char cfg[1024];
  if (vqgpt_vqgan_config_json(&m->cfg, cfg, sizeof cfg))
    return vqgpt_error("VQGAN config too long");
  int rc =
      vqgpt_st_writer_meta(w, "format", "taming-vqgan") || vqgpt_st_writer_meta(w, "config", cfg);
  for (size_t i = 0; i < m->n_params && !rc; i++) {
    const vqgan_param *p = &m->params[i];
    rc = vqgpt_st_writer_add(w, p->name, ST_F32, p->ndim, p->shape, m->w + p->offset);
  }
  return rc ? -1 : 0;
}

int vqgpt_vqgan_save(const vqgan *m, const char *path) {
  return vqgpt_vqgan_save_as(m, path, ST_F32);
}

int vqgpt_vqgan_save_as(const vqgan *m, const char *path, st_dtype storage) {
  st_writer *w = vqgpt_st_writer_new();
  if (!w) return vqgpt_error("%s: out of memory", path);
  vqgpt_st_writer_store_floats_as(w, storage);
  int rc = vqgpt_vqgan_write_tensors(m, w);
  if (!rc) rc = vqgpt_st_writer_save(w, path);
  vqgpt_st_writer_free(w);
  return rc ? -1 : 0;
}

const vqgan_config *vqgpt_vqgan_get_config(const vqgan *m) { return &m->cfg; }
int vqgpt_vqgan_factor(const vqgan *m) { return vqgpt_vqgan_config_factor(&m->cfg); }

uint64_t vqgpt_vqgan_fingerprint(const vqgan *m) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a over 16-bit words
  h = (h ^ (uint64_t)m->cfg.n_embed) * 0x100000001b3ULL;
  h = (h ^ (uint64_t)m->cfg.embed_dim) * 0x100000001b3ULL;
  const float *e = m->w + m->embedding;
  for (size_t i = 0; i < (size_t)m->cfg.n_embed * m->cfg.embed_dim; i++)
    h = (h ^ vqgpt_st_f32_to_f16(e[i])) * 0x100000001b3ULL;
  return h;
}
