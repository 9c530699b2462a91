#include "stage2_transformer/gpt.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/causal_attention.h"
#include "core/dropout.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/gelu.h"
#include "core/layernorm.h"
#include "core/linear.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "core/softmax_ce.h"
#include "weights/json.h"

#define GPT_LN_EPS 1e-5f
// Generous limits that keep every size_t product far from overflow and reject nonsense.
#define GPT_MAX_DIM (1 << 20)

// ---------------------------------------------------------------------------------------------
// Config

void vqgpt_gpt_config_defaults(gpt_config *cfg) {
  if (cfg->n_codes <= 0)
    cfg->n_codes =
        cfg->cond == GPT_COND_TEXT ? cfg->vocab_size - cfg->text_vocab - 1 : cfg->vocab_size;
}

int vqgpt_gpt_n_cond(const gpt_config *cfg) {
  return cfg->cond == GPT_COND_TEXT ? cfg->text_len : 1;
}

int vqgpt_gpt_text_pad(const gpt_config *cfg) { return cfg->n_codes + cfg->text_vocab; }

static int square_side(long area) {
  if (area < 1) return 0;
  long r = 1;
  while ((r + 1) * (r + 1) <= area) r++;
  return r * r == area ? (int)r : 0;
}

int vqgpt_gpt_trained_grid(const gpt_config *cfg, int *h, int *w) {
  if (cfg->grid_h > 0) {
    *h = cfg->grid_h;
    *w = cfg->grid_w;
    return 0;
  }
  int nc = vqgpt_gpt_n_cond(cfg);
  int side = square_side((long)cfg->block_size + 1 - nc);
  if (!side) side = square_side((long)cfg->block_size - nc);
  if (!side)
    return vqgpt_error("the GPT records no grid and its block_size %d holds no square of codes",
                       cfg->block_size);
  *h = *w = side;
  return 0;
}

int vqgpt_gpt_config_check(const gpt_config *c, const char *source) {
  if (c->vocab_size < 1 || c->vocab_size > GPT_MAX_DIM)
    return vqgpt_error("%s: config vocab_size %d out of range", source, c->vocab_size);
  if (c->block_size < 1 || c->block_size > 65536)
    return vqgpt_error("%s: config block_size %d out of range", source, c->block_size);
  if (c->n_layer < 1 || c->n_layer > 1024)
    return vqgpt_error("%s: config n_layer %d out of range", source, c->n_layer);
  if (c->n_embd < 1 || c->n_embd > 65536)
    return vqgpt_error("%s: config n_embd %d out of range", source, c->n_embd);
  if (c->n_head < 1 || c->n_embd % c->n_head != 0)
    return vqgpt_error("%s: config n_head %d does not divide n_embd %d", source, c->n_head,
                       c->n_embd);
  if (!(c->embd_pdrop >= 0 && c->embd_pdrop < 1) || !(c->resid_pdrop >= 0 && c->resid_pdrop < 1) ||
      !(c->attn_pdrop >= 0 && c->attn_pdrop < 1))
    return vqgpt_error("%s: config dropout probabilities must be in [0, 1)", source);
  if (c->n_codes < 1 || c->n_codes > c->vocab_size)
    return vqgpt_error("%s: config n_codes %d not in [1, vocab_size %d]", source, c->n_codes,
                       c->vocab_size);
  if (c->cond == GPT_COND_CLASS) {
    if (c->n_classes < 1 || c->n_classes > c->vocab_size)
      return vqgpt_error("%s: config n_classes %d not in [1, vocab_size %d]", source, c->n_classes,
                         c->vocab_size);
    if (c->null_class < 0 || c->null_class >= c->vocab_size ||
        (c->null_class > 0 && c->null_class < c->n_classes))
      return vqgpt_error(
          "%s: config null_class %d must be a token past the classes (%d) and "
          "below vocab_size %d",
          source, c->null_class, c->n_classes, c->vocab_size);
  } else if (c->cond == GPT_COND_TEXT) {
    if (c->text_len < 1 || c->text_len >= c->block_size)
      return vqgpt_error("%s: config text_len %d not in [1, block_size %d)", source, c->text_len,
                         c->block_size);
    if (c->text_vocab < 1 || (long)c->n_codes + c->text_vocab + 1 != c->vocab_size)
      return vqgpt_error("%s: config vocab_size %d is not n_codes %d + text_vocab %d + 1 (pad)",
                         source, c->vocab_size, c->n_codes, c->text_vocab);
  } else if (c->sos_token < 0 || c->sos_token >= c->vocab_size) {
    return vqgpt_error("%s: config sos_token %d not in [0, vocab_size %d)", source, c->sos_token,
                       c->vocab_size);
  }
  if (c->grid_h < 0 || c->grid_w < 0 || (c->grid_h == 0) != (c->grid_w == 0))
    return vqgpt_error("%s: config grid must be two positive integers", source);
  return 0;
}

static int get_int_key(const json_value *o, const char *key, int *out, bool required,
                       const char *source) {
  int64_t v;
  if (!vqgpt_json_get(o, key)) {
    if (required) return vqgpt_error("%s: config lacks '%s'", source, key);
    return 0;
  }
  if (!vqgpt_json_get_int(o, key, &v) || v < INT32_MIN || v > INT32_MAX)
    return vqgpt_error("%s: config '%s' is not an integer", source, key);
  *out = (int)v;
  return 0;
}

static int get_float_key(const json_value *o, const char *key, float *out, const char *source) {
  double v;
  if (!vqgpt_json_get(o, key)) return 0;
  if (!vqgpt_json_get_number(o, key, &v))
    return vqgpt_error("%s: config '%s' is not a number", source, key);
  *out = (float)v;
  return 0;
}

int vqgpt_gpt_config_parse(gpt_config *cfg, const char *text, const char *source) {
  memset(cfg, 0, sizeof *cfg);
  json_value *root = vqgpt_json_parse(text, strlen(text));
  if (!root) return vqgpt_error("%s: config is not valid JSON: %s", source, vqgpt_last_error());
  int rc = -1;
  if (root->type != JSON_OBJECT) {
    vqgpt_error("%s: config is not a JSON object", source);
    goto done;
  }
  if (get_int_key(root, "vocab_size", &cfg->vocab_size, true, source) ||
      get_int_key(root, "block_size", &cfg->block_size, true, source) ||
      get_int_key(root, "n_layer", &cfg->n_layer, true, source) ||
      get_int_key(root, "n_head", &cfg->n_head, true, source) ||
      get_int_key(root, "n_embd", &cfg->n_embd, true, source) ||
      get_int_key(root, "n_classes", &cfg->n_classes, false, source) ||
      get_int_key(root, "sos_token", &cfg->sos_token, false, source) ||
      get_int_key(root, "n_codes", &cfg->n_codes, false, source) ||
      get_int_key(root, "null_class", &cfg->null_class, false, source) ||
      get_int_key(root, "text_len", &cfg->text_len, false, source) ||
      get_int_key(root, "text_vocab", &cfg->text_vocab, false, source) ||
      get_float_key(root, "embd_pdrop", &cfg->embd_pdrop, source) ||
      get_float_key(root, "resid_pdrop", &cfg->resid_pdrop, source) ||
      get_float_key(root, "attn_pdrop", &cfg->attn_pdrop, source))
    goto done;
  const json_value *cond = vqgpt_json_get(root, "cond");
  if (cond) {
    const char *s = vqgpt_json_get_string(root, "cond");
    if (s && !strcmp(s, "none"))
      cfg->cond = GPT_COND_NONE;
    else if (s && !strcmp(s, "class"))
      cfg->cond = GPT_COND_CLASS;
    else if (s && !strcmp(s, "text"))
      cfg->cond = GPT_COND_TEXT;
    else {
      vqgpt_error("%s: config 'cond' must be \"none\", \"class\" or \"text\"", source);
      goto done;
    }
  }
  if (vqgpt_json_get(root, "grid")) {
    int64_t g[2];
    if (vqgpt_json_get_int_array(root, "grid", g, 2) != 2 || g[0] < 1 || g[1] < 1 || g[0] > 65536 ||
        g[1] > 65536) {
      vqgpt_error("%s: config 'grid' must be [h, w]", source);
      goto done;
    }
    cfg->grid_h = (int)g[0];
    cfg->grid_w = (int)g[1];
  }
  vqgpt_gpt_config_defaults(cfg);
  rc = vqgpt_gpt_config_check(cfg, source);
done:
  vqgpt_json_free(root);
  return rc;
}

char *vqgpt_gpt_config_to_json(const gpt_config *c) {
  char grid[64] = "";
  if (c->grid_h > 0) snprintf(grid, sizeof grid, ", \"grid\": [%d, %d]", c->grid_h, c->grid_w);
  char cond[128];
  if (c->cond == GPT_COND_CLASS && c->null_class > 0)
    snprintf(cond, sizeof cond, "\"cond\": \"class\", \"n_classes\": %d, \"null_class\": %d",
             c->n_classes, c->null_class);
  else if (c->cond == GPT_COND_CLASS)
    snprintf(cond, sizeof cond, "\"cond\": \"class\", \"n_classes\": %d", c->n_classes);
  else if (c->cond == GPT_COND_TEXT)
    snprintf(cond, sizeof cond, "\"cond\": \"text\", \"text_len\": %d, \"text_vocab\": %d",
             c->text_len, c->text_vocab);
  else
    snprintf(cond, sizeof cond, "\"cond\": \"none\", \"sos_token\": %d", c->sos_token);
  size_t n = 1024;
  char *s = malloc(n);
  if (!s) return NULL;
  snprintf(s, n,
           "{\"vocab_size\": %d, \"block_size\": %d, \"n_layer\": %d, \"n_head\": %d, "
           "\"n_embd\": %d, \"embd_pdrop\": %.9g, \"resid_pdrop\": %.9g, \"attn_pdrop\": %.9g, "
           "%s, \"n_codes\": %d%s}",
           c->vocab_size, c->block_size, c->n_layer, c->n_head, c->n_embd, c->embd_pdrop,
           c->resid_pdrop, c->attn_pdrop, cond, c->n_codes, grid);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Parameter layout

size_t vqgpt_gpt_count_params(const gpt_config *c) {
  size_t V = c->vocab_size, C = c->n_embd, L = c->n_layer, Tb = c->block_size;
  size_t per_layer =
      2 * C + 3 * C * C + 3 * C + C * C + C + 2 * C + 4 * C * C + 4 * C + 4 * C * C + C;
  return V * C + Tb * C + L * per_layer + 2 * C + V * C;
}

// The next n floats of a block being laid out.
static float *take(float **q, size_t n) {
  float *at = *q;
  *q += n;
  return at;
}

// Points the views of one parameter-sized block, in the fixed layout order.
static void point_params(gpt_params *p, float *base, const gpt_config *c) {
  size_t V = c->vocab_size, C = c->n_embd, L = c->n_layer, Tb = c->block_size;
  float *q = base;
  p->tok_emb = take(&q, V * C);
  p->pos_emb = take(&q, Tb * C);
  p->ln1_w = take(&q, L * C);
  p->ln1_b = take(&q, L * C);
  p->qkv_w = take(&q, L * 3 * C * C);
  p->qkv_b = take(&q, L * 3 * C);
  p->proj_w = take(&q, L * C * C);
  p->proj_b = take(&q, L * C);
  p->ln2_w = take(&q, L * C);
  p->ln2_b = take(&q, L * C);
  p->fc_w = take(&q, L * 4 * C * C);
  p->fc_b = take(&q, L * 4 * C);
  p->fcproj_w = take(&q, L * 4 * C * C);
  p->fcproj_b = take(&q, L * C);
  p->lnf_w = take(&q, C);
  p->lnf_b = take(&q, C);
  p->head_w = take(&q, V * C);
}

static void add_tensor(gpt *m, const char *name, const float *at, int ndim, int64_t d0, int64_t d1,
                       int64_t d2, bool decay) {
  gpt_tensor_info *t = &m->tensors[m->n_tensors++];
  snprintf(t->name, sizeof t->name, "%s", name);
  t->offset = (size_t)(at - m->params);
  t->ndim = ndim;
  t->shape[0] = d0;
  t->shape[1] = d1;
  t->shape[2] = d2;
  t->numel = 1;
  for (int i = 0; i < ndim; i++) t->numel *= (size_t)t->shape[i];
  t->decay = decay;
}

static int make_tensor_table(gpt *m) {
  const gpt_config *c = &m->cfg;
  size_t C = c->n_embd;
  m->tensors = calloc(4 + 16 * (size_t)c->n_layer + 1, sizeof *m->tensors);
  if (!m->tensors) return vqgpt_error("out of memory for the GPT tensor table");
  m->n_tensors = 0;
  const gpt_params *p = &m->p;
  add_tensor(m, "tok_emb.weight", p->tok_emb, 2, c->vocab_size, C, 0, false);
  add_tensor(m, "pos_emb", p->pos_emb, 3, 1, c->block_size, C, false);
  char name[64];
  for (int l = 0; l < c->n_layer; l++) {
    size_t L = l;
#define T1(suffix, ptr, n0, decay)                        \
  snprintf(name, sizeof name, "blocks.%d.%s", l, suffix); \
  add_tensor(m, name, ptr, 1, n0, 0, 0, decay)
#define T2(suffix, ptr, n0, n1, decay)                    \
  snprintf(name, sizeof name, "blocks.%d.%s", l, suffix); \
  add_tensor(m, name, ptr, 2, n0, n1, 0, decay)
    T1("ln1.weight", p->ln1_w + L * C, C, false);
    T1("ln1.bias", p->ln1_b + L * C, C, false);
    T1("ln2.weight", p->ln2_w + L * C, C, false);
    T1("ln2.bias", p->ln2_b + L * C, C, false);
    T2("attn.query.weight", p->qkv_w + L * 3 * C * C, C, C, true);
    T1("attn.query.bias", p->qkv_b + L * 3 * C, C, false);
    T2("attn.key.weight", p->qkv_w + L * 3 * C * C + C * C, C, C, true);
    T1("attn.key.bias", p->qkv_b + L * 3 * C + C, C, false);
    T2("attn.value.weight", p->qkv_w + L * 3 * C * C + 2 * C * C, C, C, true);
    T1("attn.value.bias", p->qkv_b + L * 3 * C + 2 * C, C, false);
    T2("attn.proj.weight", p->proj_w + L * C * C, C, C, true);
    T1("attn.proj.bias", p->proj_b + L * C, C, false);
    T2("mlp.0.weight", p->fc_w + L * 4 * C * C, 4 * C, C, true);
    T1("mlp.0.bias", p->fc_b + L * 4 * C, 4 * C, false);
    T2("mlp.2.weight", p->fcproj_w + L * 4 * C * C, C, 4 * C, true);
    T1("mlp.2.bias", p->fcproj_b + L * C, C, false);
#undef T1
#undef T2
  }
  add_tensor(m, "ln_f.weight", p->lnf_w, 1, C, 0, 0, false);
  add_tensor(m, "ln_f.bias", p->lnf_b, 1, C, 0, 0, false);
  add_tensor(m, "head.weight", p->head_w, 2, c->vocab_size, C, 0, true);
  return 0;
}

const gpt_tensor_info *vqgpt_gpt_find_tensor(const gpt *m, const char *name) {
  for (size_t i = 0; i < m->n_tensors; i++)
    if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
  return NULL;
}

static gpt *gpt_alloc(const gpt_config *cfg, const char *source) {
  if (vqgpt_gpt_config_check(cfg, source)) return NULL;
  gpt *m = calloc(1, sizeof *m);
  if (!m) {
    vqgpt_error("out of memory");
    return NULL;
  }
  m->cfg = *cfg;
  m->n_params = vqgpt_gpt_count_params(cfg);
  m->params = malloc(m->n_params * sizeof(float));
  if (!m->params) {
    vqgpt_error("out of memory for %zu GPT parameters", m->n_params);
    free(m);
    return NULL;
  }
  point_params(&m->p, m->params, cfg);
  if (make_tensor_table(m)) {
    vqgpt_gpt_free(m);
    return NULL;
  }
  return m;
}

gpt *vqgpt_gpt_create(const gpt_config *cfg, uint64_t *rng) {
  gpt *m = gpt_alloc(cfg, "GPT");
  if (!m) return NULL;
  memset(m->params, 0, m->n_params * sizeof(float));
  for (size_t i = 0; i < m->n_tensors; i++) {
    const gpt_tensor_info *t = &m->tensors[i];
    float *x = m->params + t->offset;
    size_t len = strlen(t->name);
    bool is_ln_weight = strstr(t->name, "ln") && len > 7 && !strcmp(t->name + len - 7, ".weight");
    if (t->decay || !strcmp(t->name, "tok_emb.weight"))
      vqgpt_rng_fill_normal(rng, x, t->numel, 0.0f, 0.02f);
    else if (is_ln_weight)
      for (size_t j = 0; j < t->numel; j++) x[j] = 1.0f;
  }
  return m;
}

int vqgpt_gpt_read_block(const gpt *m, const st_file *f, const char *prefix, float *block) {
  char name[160];
  for (size_t i = 0; i < m->n_tensors; i++) {
    const gpt_tensor_info *t = &m->tensors[i];
    snprintf(name, sizeof name, "%s%s", prefix, t->name);
    if (vqgpt_st_read_weights(f, name, block + t->offset, t->ndim, t->shape)) return -1;
  }
  return 0;
}

// Tensors a GPT file may hold beside the model (vqgpt_st_check_all_used patterns): a training
// checkpoint's AdamW moments and data order (vqgpt_gpt_trainer_save), the reference's causal-mask
// buffers.
const char *const vqgpt_GPT_FILE_EXTRAS[] = {
    "opt.m.*", "opt.v.*", "train.order", "blocks.*.attn.mask", "tokenizer", NULL};

// The token embedding and the Linear weights: what a sampling model may keep in half.
static bool is_matrix(const gpt_tensor_info *t) {
  return t->decay || !strcmp(t->name, "tok_emb.weight");
}

// The one format (F16 or BF16) of every matrix a sampling model may keep in half precision;
// false if any of them is stored otherwise.
static bool matrices_half_format(const gpt *m, const st_file *f, half_format *fmt) {
  st_dtype want = ST_F32;
  for (size_t i = 0; i < m->n_tensors; i++) {
    const gpt_tensor_info *t = &m->tensors[i];
    if (!is_matrix(t)) continue;
    const st_tensor *st = vqgpt_st_find(f, t->name);
    if (!st || (st->dtype != ST_F16 && st->dtype != ST_BF16)) return false;
    if (want == ST_F32) want = st->dtype;
    if (st->dtype != want) return false;
  }
  *fmt = want == ST_F16 ? HALF_F16 : HALF_BF16;
  return true;
}

// Reads a model whose matrices stay in half precision (format fmt, checked for every matrix by
// matrices_half_format): each matrix is read by the float32 reader into a temporary (shape and
// finiteness checks), then its bits are copied from the file; the vectors are read in place
// and then move to a small float32 block. The float32 block's matrix part is never written,
// so it never becomes resident before it is freed.
static int read_half_model(gpt *m, const st_file *f, half_format fmt) {
  const gpt_config *c = &m->cfg;
  size_t V = c->vocab_size, C = c->n_embd, L = c->n_layer, Tb = c->block_size;
  gpt_params *p = &m->p;
  gpt_half_params *h = &m->h;
  struct {
    float **f32;
    uint16_t **half;
    size_t n;
  } mats[] = {{&p->tok_emb, &h->tok_emb, V * C},           {&p->qkv_w, &h->qkv_w, L * 3 * C * C},
              {&p->proj_w, &h->proj_w, L * C * C},         {&p->fc_w, &h->fc_w, L * 4 * C * C},
              {&p->fcproj_w, &h->fcproj_w, L * 4 * C * C}, {&p->head_w, &h->head_w, V * C}};
  struct {
    float **f32;
    size_t n;
  } vecs[] = {{&p->pos_emb, Tb * C}, {&p->ln1_w, L * C}, {&p->ln1_b, L * C}, {&p->qkv_b, L * 3 * C},
              {&p->proj_b, L * C},   {&p->ln2_w, L * C}, {&p->ln2_b, L * C}, {&p->fc_b, L * 4 * C},
              {&p->fcproj_b, L * C}, {&p->lnf_w, C},     {&p->lnf_b, C}};
  size_t n_mats = sizeof mats / sizeof *mats, n_vecs = sizeof vecs / sizeof *vecs;
  size_t half_total = 0, vec_total = 0, widest = 0;
  for (size_t i = 0; i < n_mats; i++) half_total += mats[i].n;
  for (size_t i = 0; i < n_vecs; i++) vec_total += vecs[i].n;
  for (size_t i = 0; i < m->n_tensors; i++)
    if (is_matrix(&m->tensors[i]) && m->tensors[i].numel > widest) widest = m->tensors[i].numel;
  uint16_t *hb = malloc(half_total * sizeof(uint16_t));
  float *vb = malloc(vec_total * sizeof(float)), *tmp = malloc(widest * sizeof(float));
  int rc = -1;
  if (!hb || !vb || !tmp) {
    vqgpt_error("out of memory for the GPT's half-precision weights");
    goto done;
  }
  uint16_t *hq = hb;
  for (size_t i = 0; i < n_mats; i++) {
    *mats[i].half = hq;
    hq += mats[i].n;
  }
  for (size_t i = 0; i < m->n_tensors; i++) {
    const gpt_tensor_info *t = &m->tensors[i];
    float *at = m->params + t->offset;
    if (!is_matrix(t)) {
      if (vqgpt_st_read_weights(f, t->name, at, t->ndim, t->shape)) goto done;
      continue;
    }
    if (vqgpt_st_read_weights(f, t->name, tmp, t->ndim, t->shape)) goto done;
    for (size_t j = 0; j < n_mats; j++) {  // its place within its family
      const float *base = *mats[j].f32;
      if (at >= base && at < base + mats[j].n)
        memcpy(*mats[j].half + (at - base), vqgpt_st_find(f, t->name)->data,
               t->numel * sizeof(uint16_t));
    }
  }
  float *vq = vb;
  for (size_t i = 0; i < n_vecs; i++) {
    memcpy(vq, *vecs[i].f32, vecs[i].n * sizeof(float));
    *vecs[i].f32 = vq;
    vq += vecs[i].n;
  }
  for (size_t i = 0; i < n_mats; i++) *mats[i].f32 = NULL;
  free(m->params);
  m->params = vb;
  m->half_block = hb;
  m->half_fmt = fmt;
  m->half_weights = true;
  hb = NULL;
  vb = NULL;
  rc = 0;
done:
  free(hb);
  free(vb);
  free(tmp);
  return rc;
}

static gpt *load(const char *path, bool for_sampling) {
  st_file f;
  if (vqgpt_st_open(&f, path)) return NULL;
  gpt *m = NULL;
  const char *config = vqgpt_st_meta(&f, "config");
  gpt_config cfg;
  half_format fmt;
  if (vqgpt_st_check_format(&f, "taming-gpt", "a GPT model")) goto done;
  if (!config) {
    vqgpt_error("%s: no 'config' in the safetensors metadata", path);
    goto done;
  }
  if (vqgpt_gpt_config_parse(&cfg, config, path)) goto done;
  m = gpt_alloc(&cfg, path);
  if (!m) goto done;
  bool half = for_sampling && matrices_half_format(m, &f, &fmt);
  if ((half ? read_half_model(m, &f, fmt) : vqgpt_gpt_read_block(m, &f, "", m->params)) ||
      vqgpt_gpt_card_read(&m->card, &f, path) ||
      vqgpt_st_check_all_used(&f, vqgpt_GPT_FILE_EXTRAS)) {
    vqgpt_gpt_free(m);
    m = NULL;
  }
done:
  vqgpt_st_close(&f);
  return m;
}

gpt *vqgpt_gpt_load(const char *path) { return load(path, false); }

gpt *vqgpt_gpt_load_for_sampling(const char *path) { return load(path, true); }

// Training, full forwards and saving need the float32 matrices.
static int check_not_half(const gpt *m, const char *what) {
  if (m->half_weights)
    return vqgpt_error("this GPT was loaded for sampling (half-precision weights): it cannot %s",
                       what);
  return 0;
}

static void free_acts(gpt *m) {
  free(m->act_block);
  free(m->act_targets);
  m->act_block = NULL;
  m->act_targets = NULL;
  m->B = m->T = 0;
}

void vqgpt_gpt_free(gpt *m) {
  if (!m) return;
  vqgpt_gpt_card_free(&m->card);
  free(m->params);
  free(m->half_block);
  free(m->grads);
  free(m->tensors);
  free_acts(m);
  free(m);
}

int vqgpt_gpt_writer_add_block(const gpt *m, st_writer *w, const char *prefix, const float *block,
                               char ***names) {
  *names = NULL;
  if (check_not_half(m, "be saved")) return -1;
  *names = calloc(m->n_tensors, sizeof(char *));
  if (!*names) return vqgpt_error("out of memory");
  for (size_t i = 0; i < m->n_tensors; i++) {
    const gpt_tensor_info *t = &m->tensors[i];
    size_t n = strlen(prefix) + strlen(t->name) + 1;
    char *s = malloc(n);
    if (!s) return vqgpt_error("out of memory");
    snprintf(s, n, "%s%s", prefix, t->name);
    (*names)[i] = s;
    if (vqgpt_st_writer_add(w, s, ST_F32, t->ndim, t->shape, block + t->offset)) return -1;
  }
  return 0;
}

void vqgpt_gpt_free_names(const gpt *m, char **names) {
  if (!names) return;
  for (size_t i = 0; i < m->n_tensors; i++) free(names[i]);
  free(names);
}

int vqgpt_gpt_save(const gpt *m, const char *path) { return vqgpt_gpt_save_as(m, path, ST_F32); }

int vqgpt_gpt_save_as(const gpt *m, const char *path, st_dtype storage) {
  st_writer *w = vqgpt_st_writer_new();
  if (!w) return vqgpt_error("out of memory");
  vqgpt_st_writer_store_floats_as(w, storage);
  char **names = NULL;
  char *cfg = vqgpt_gpt_config_to_json(&m->cfg);
  int rc = -1;
  if (!cfg) {
    vqgpt_error("out of memory");
    goto done;
  }
  if (vqgpt_st_writer_meta(w, "format", "taming-gpt") || vqgpt_st_writer_meta(w, "config", cfg) ||
      vqgpt_gpt_card_write(&m->card, w) ||
      vqgpt_gpt_writer_add_block(m, w, "", m->params, &names) || vqgpt_st_writer_save(w, path))
    goto done;
  rc = 0;
done:
  vqgpt_st_writer_free(w);
  vqgpt_gpt_free_names(m, names);
  free(cfg);
  return rc;
}

int vqgpt_gpt_alloc_grads(gpt *m) {
  if (m->grads) return 0;
  if (check_not_half(m, "be trained")) return -1;
  m->grads = calloc(m->n_params, sizeof(float));
  if (!m->grads) return vqgpt_error("out of memory for %zu GPT gradients", m->n_params);
  point_params(&m->g, m->grads, &m->cfg);
  return 0;
}

void vqgpt_gpt_zero_grad(gpt *m) {
  if (m->grads) memset(m->grads, 0, m->n_params * sizeof(float));
}

// ---------------------------------------------------------------------------------------------
// Activations

int vqgpt_gpt_build(gpt *m, int B, int T) {
  const gpt_config *c = &m->cfg;
  if (check_not_half(m, "run a full forward")) return -1;
  if (B < 1 || T < 1 || T > c->block_size)
    return vqgpt_error("GPT batch shape %dx%d invalid (block_size %d)", B, T, c->block_size);
  if (m->act_block && m->B == B && m->T == T) return 0;
  free_acts(m);
  size_t BT = (size_t)B * T, C = c->n_embd, L = c->n_layer, H = c->n_head, V = c->vocab_size;
  size_t TT = (size_t)B * H * T * T;
  size_t sizes[] = {
      BT * C,  // encoded
      L * BT * C,
      L * BT,
      L * BT,  // ln1, mean, rstd
      L * BT * 3 * C,
      L * BT * C,
      L * TT,      // qkv, atty, att
      L * BT * C,  // residual2
      L * BT * C,
      L * BT,
      L * BT,  // ln2, mean, rstd
      L * BT * 4 * C,
      L * BT * 4 * C,
      L * BT * C,  // fch, fch_gelu, residual3
      BT * C,
      BT,
      BT,  // lnf, mean, rstd
      BT * V,
      BT * V,
      BT,  // logits, probs, losses
      BT * C,
      BT * C,
      BT * 4 * C,
      BT * 3 * C,
      TT,  // dresidual, dln, dbuf, dqkv, datt
  };
  float **ptrs[] = {
      &m->a.encoded,   &m->a.ln1,      &m->a.ln1_mean,  &m->a.ln1_rstd,  &m->a.qkv,
      &m->a.atty,      &m->a.att,      &m->a.residual2, &m->a.ln2,       &m->a.ln2_mean,
      &m->a.ln2_rstd,  &m->a.fch,      &m->a.fch_gelu,  &m->a.residual3, &m->a.lnf,
      &m->a.lnf_mean,  &m->a.lnf_rstd, &m->a.logits,    &m->a.probs,     &m->a.losses,
      &m->a.dresidual, &m->a.dln,      &m->a.dbuf,      &m->a.dqkv,      &m->a.datt,
  };
  size_t n = sizeof sizes / sizeof sizes[0], total = 0;
  for (size_t i = 0; i < n; i++) total += sizes[i];
  if (vqgpt_memory_check(total * sizeof(float), "the GPT training activations")) return -1;
  m->act_block = malloc(total * sizeof(float));
  m->act_targets = malloc(2 * BT * sizeof(int32_t));
  if (!m->act_block || !m->act_targets) {
    free_acts(m);
    return vqgpt_error("out of memory for GPT activations (%.1f GB)", total * 4.0 / 1e9);
  }
  float *q = m->act_block;
  for (size_t i = 0; i < n; i++) {
    *ptrs[i] = q;
    q += sizes[i];
  }
  m->a.targets = m->act_targets;
  m->a.inputs = m->act_targets + BT;
  m->B = B;
  m->T = T;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Forward / backward

// Independent dropout masks per site: embeddings, then per layer attention, attention
// residual, MLP residual.
static uint64_t site_seed(uint64_t seed, int layer, int site) {
  return vqgpt_rng_hash(seed, (uint64_t)(layer + 1) * 8 + (uint64_t)site);
}

int vqgpt_gpt_forward(gpt *m, const int32_t *idx, const int32_t *targets, int B, int T, bool train,
                      uint64_t drop_seed, int row0) {
  if (row0 < 0) return vqgpt_error("GPT forward: first batch row %d is negative", row0);
  if (vqgpt_gpt_build(m, B, T)) return -1;
  const gpt_config *c = &m->cfg;
  int C = c->n_embd, L = c->n_layer, H = c->n_head, V = c->vocab_size;
  size_t BT = (size_t)B * T;
  for (size_t i = 0; i < BT; i++)
    if (idx[i] < 0 || idx[i] >= V)
      return vqgpt_error("GPT input token %d not in [0, %d)", idx[i], V);
  if (targets)
    for (size_t i = 0; i < BT; i++)
      if (targets[i] >= V) return vqgpt_error("GPT target %d not in [0, %d)", targets[i], V);
  m->train = train;
  m->drop_seed = drop_seed;
  m->drop_row0 = row0;
  size_t first = (size_t)row0 * T * C;  // counter of this call's first (B, T, C) element
  gpt_acts *a = &m->a;
  const gpt_params *p = &m->p;

  // token + position embeddings, then embedding dropout
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      float *x = a->encoded + ((size_t)b * T + t) * C;  // (C)
      const float *te = p->tok_emb + (size_t)idx[(size_t)b * T + t] * C;
      const float *pe = p->pos_emb + (size_t)t * C;
      for (int i = 0; i < C; i++) x[i] = te[i] + pe[i];
    }
  if (train)
    vqgpt_dropout_forward(a->encoded, a->encoded, BT * C, c->embd_pdrop,
                          site_seed(drop_seed, -1, 0), first);

  for (int l = 0; l < L; l++) {
    const float *resid = l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * BT * C;  // (B,T,C)
    float *ln1 = a->ln1 + (size_t)l * BT * C;
    float *qkv = a->qkv + (size_t)l * BT * 3 * C;
    float *atty = a->atty + (size_t)l * BT * C;
    float *att = a->att + (size_t)l * B * H * T * T;
    float *res2 = a->residual2 + (size_t)l * BT * C;
    float *ln2 = a->ln2 + (size_t)l * BT * C;
    float *fch = a->fch + (size_t)l * BT * 4 * C;
    float *fchg = a->fch_gelu + (size_t)l * BT * 4 * C;
    float *res3 = a->residual3 + (size_t)l * BT * C;
    float *tmp = a->dln;  // (B, T, C) free during forward
    size_t Lc = (size_t)l * C;

    vqgpt_layernorm_forward(ln1, a->ln1_mean + (size_t)l * BT, a->ln1_rstd + (size_t)l * BT, resid,
                            p->ln1_w + Lc, p->ln1_b + Lc, (int)BT, C, GPT_LN_EPS);
    vqgpt_linear_forward(qkv, ln1, p->qkv_w + Lc * 3 * C, p->qkv_b + Lc * 3, (int)BT, C, 3 * C);
    vqgpt_causal_attention_forward(atty, att, qkv, B, T, C, H, train ? c->attn_pdrop : 0.0f,
                                   site_seed(drop_seed, l, 1), row0, a->datt);
    vqgpt_linear_forward(tmp, atty, p->proj_w + Lc * C, p->proj_b + Lc, (int)BT, C, C);
    if (train)
      vqgpt_dropout_forward(tmp, tmp, BT * C, c->resid_pdrop, site_seed(drop_seed, l, 2), first);
    for (size_t i = 0; i < BT * C; i++) res2[i] = resid[i] + tmp[i];

    vqgpt_layernorm_forward(ln2, a->ln2_mean + (size_t)l * BT, a->ln2_rstd + (size_t)l * BT, res2,
                            p->ln2_w + Lc, p->ln2_b + Lc, (int)BT, C, GPT_LN_EPS);
    vqgpt_linear_forward(fch, ln2, p->fc_w + Lc * 4 * C, p->fc_b + Lc * 4, (int)BT, C, 4 * C);
    vqgpt_gelu_forward(fchg, fch, BT * 4 * C);
    vqgpt_linear_forward(tmp, fchg, p->fcproj_w + Lc * 4 * C, p->fcproj_b + Lc, (int)BT, 4 * C, C);
    if (train)
      vqgpt_dropout_forward(tmp, tmp, BT * C, c->resid_pdrop, site_seed(drop_seed, l, 3), first);
    for (size_t i = 0; i < BT * C; i++) res3[i] = res2[i] + tmp[i];
  }
  const float *last = a->residual3 + (size_t)(L - 1) * BT * C;
  vqgpt_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, last, p->lnf_w, p->lnf_b, (int)BT, C,
                          GPT_LN_EPS);
  vqgpt_linear_forward(a->logits, a->lnf, p->head_w, NULL, (int)BT, C, V);

  m->have_loss = false;
  memcpy(a->inputs, idx, BT * sizeof(int32_t));
  if (targets) {
    memcpy(a->targets, targets, BT * sizeof(int32_t));
    m->loss = (float)vqgpt_softmax_ce_forward(a->probs, a->losses, a->logits, targets, (int)BT, V,
                                              &m->n_valid);
    m->have_loss = true;
  }
  return 0;
}

int vqgpt_gpt_backward(gpt *m) {
  if (!m->have_loss) return vqgpt_error("GPT backward needs a forward pass with targets");
  if (vqgpt_gpt_alloc_grads(m)) return -1;
  const gpt_config *c = &m->cfg;
  int B = m->B, T = m->T, C = c->n_embd, L = c->n_layer, H = c->n_head, V = c->vocab_size;
  size_t BT = (size_t)B * T;
  gpt_acts *a = &m->a;
  const gpt_params *p = &m->p;
  const gpt_params *g = &m->g;
  bool train = m->train;
  uint64_t seed = m->drop_seed;
  int row0 = m->drop_row0;
  size_t first = (size_t)row0 * T * C;  // as in the forward

  float *dlogits = a->probs;  // (B, T, V) in place
  vqgpt_softmax_ce_backward(dlogits, a->probs, a->targets, (int)BT, V, m->n_valid, 1.0f);
  float *dres = a->dresidual;  // (B, T, C) gradient of the residual stream
  float *dln = a->dln;         // (B, T, C)
  vqgpt_linear_backward(dln, g->head_w, NULL, dlogits, a->lnf, p->head_w, (int)BT, C, V);
  memset(dres, 0, BT * C * sizeof(float));
  const float *last = a->residual3 + (size_t)(L - 1) * BT * C;
  vqgpt_layernorm_backward(dres, g->lnf_w, g->lnf_b, dln, last, a->lnf_mean, a->lnf_rstd, p->lnf_w,
                           (int)BT, C);

  for (int l = L - 1; l >= 0; l--) {
    const float *resid = l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * BT * C;
    const float *ln1 = a->ln1 + (size_t)l * BT * C;
    const float *qkv = a->qkv + (size_t)l * BT * 3 * C;
    const float *atty = a->atty + (size_t)l * BT * C;
    const float *att = a->att + (size_t)l * B * H * T * T;
    const float *res2 = a->residual2 + (size_t)l * BT * C;
    const float *ln2 = a->ln2 + (size_t)l * BT * C;
    const float *fch = a->fch + (size_t)l * BT * 4 * C;
    const float *fchg = a->fch_gelu + (size_t)l * BT * 4 * C;
    size_t Lc = (size_t)l * C;
    float *dbuf = a->dbuf;  // (B, T, 4C)

    // MLP branch: res3 = res2 + drop(fcproj(gelu(fc(ln2(res2))))); dres holds d res3 = d res2.
    const float *dbranch = dres;
    if (train && c->resid_pdrop > 0) {
      vqgpt_dropout_backward(dln, dres, BT * C, c->resid_pdrop, site_seed(seed, l, 3), first);
      dbranch = dln;
    }
    vqgpt_linear_backward(dbuf, g->fcproj_w + Lc * 4 * C, g->fcproj_b + Lc, dbranch, fchg,
                          p->fcproj_w + Lc * 4 * C, (int)BT, 4 * C, C);
    vqgpt_gelu_backward(dbuf, dbuf, fch, BT * 4 * C);
    vqgpt_linear_backward(dln, g->fc_w + Lc * 4 * C, g->fc_b + Lc * 4, dbuf, ln2,
                          p->fc_w + Lc * 4 * C, (int)BT, C, 4 * C);
    vqgpt_layernorm_backward(dres, g->ln2_w + Lc, g->ln2_b + Lc, dln, res2,
                             a->ln2_mean + (size_t)l * BT, a->ln2_rstd + (size_t)l * BT,
                             p->ln2_w + Lc, (int)BT, C);

    // Attention branch: res2 = resid + drop(proj(attn(qkv(ln1(resid))))).
    dbranch = dres;
    if (train && c->resid_pdrop > 0) {
      vqgpt_dropout_backward(dln, dres, BT * C, c->resid_pdrop, site_seed(seed, l, 2), first);
      dbranch = dln;
    }
    float *datty = dbuf;  // (B, T, C) reuses the MLP scratch
    vqgpt_linear_backward(datty, g->proj_w + Lc * C, g->proj_b + Lc, dbranch, atty,
                          p->proj_w + Lc * C, (int)BT, C, C);
    vqgpt_causal_attention_backward(a->dqkv, datty, qkv, att, B, T, C, H,
                                    train ? c->attn_pdrop : 0.0f, site_seed(seed, l, 1), row0,
                                    a->datt);
    vqgpt_linear_backward(dln, g->qkv_w + Lc * 3 * C, g->qkv_b + Lc * 3, a->dqkv, ln1,
                          p->qkv_w + Lc * 3 * C, (int)BT, C, 3 * C);
    vqgpt_layernorm_backward(dres, g->ln1_w + Lc, g->ln1_b + Lc, dln, resid,
                             a->ln1_mean + (size_t)l * BT, a->ln1_rstd + (size_t)l * BT,
                             p->ln1_w + Lc, (int)BT, C);
  }

  // Embeddings: dres is d encoded.
  if (train && c->embd_pdrop > 0)
    vqgpt_dropout_backward(dres, dres, BT * C, c->embd_pdrop, site_seed(seed, -1, 0), first);
  for (int t = 0; t < T; t++) {
    float *dpe = g->pos_emb + (size_t)t * C;
    for (int b = 0; b < B; b++) {
      const float *d = dres + ((size_t)b * T + t) * C;
      for (int i = 0; i < C; i++) dpe[i] += d[i];
    }
  }
  // Rows of tok_emb split across threads by id; each thread scans the tokens in order, so
  // repeated ids accumulate in a fixed order.
#pragma omp parallel for schedule(static) if (BT * C >= VQGPT_PAR_MIN)
  for (int r0 = 0; r0 < V; r0 += 64) {
    for (size_t i = 0; i < BT; i++) {
      int id = a->inputs[i];
      if (id < r0 || id >= r0 + 64) continue;
      float *dte = g->tok_emb + (size_t)id * C;
      const float *d = dres + i * C;
      for (int k = 0; k < C; k++) dte[k] += d[k];
    }
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Incremental decoding

int vqgpt_gpt_kv_init(gpt_kv *kv, const gpt *m, int B) {
  memset(kv, 0, sizeof *kv);
  const gpt_config *c = &m->cfg;
  if (B < 1) return vqgpt_error("KV cache batch %d invalid", B);
  size_t n = (size_t)c->n_layer * B * c->block_size * c->n_embd;
  if (vqgpt_memory_check(2 * n * sizeof(float), "the KV cache")) return -1;
  kv->k = malloc(2 * n * sizeof(float));
  if (!kv->k) return vqgpt_error("out of memory for the KV cache (%.1f MB)", n * 8.0 / 1e6);
  kv->v = kv->k + n;
  kv->B = B;
  kv->Tmax = c->block_size;
  kv->T = 0;
  return 0;
}

void vqgpt_gpt_work_free(gpt_work *w) {
  free(w->block);
  memset(w, 0, sizeof *w);
}

void vqgpt_gpt_kv_free(gpt_kv *kv) {
  free(kv->k);
  vqgpt_gpt_work_free(&kv->work);
  memset(kv, 0, sizeof *kv);
}

void vqgpt_gpt_kv_reset(gpt_kv *kv) { kv->T = 0; }

// Sizes w for `rows` token rows (keeps it when it is large enough).
static int work_reserve(gpt_work *w, const gpt *m, size_t rows) {
  if (w->block && w->rows >= rows) return 0;
  vqgpt_gpt_work_free(w);
  const gpt_config *c = &m->cfg;
  size_t C = c->n_embd, Tm = c->block_size;
  // The widest weight matrix for vqgpt_linear_forward_half's tiles: fcproj (C, 4C) or a tile of
  // any other (all have C columns).
  size_t tile =
      m->half_weights ? vqgpt_linear_half_scratch_floats(4 * (int)C, LINEAR_HALF_TILE_ROWS) : 0;
  size_t sizes[] = {rows * C,
                    rows * C,
                    rows * 3 * C,
                    rows * C,
                    rows * C,
                    rows * 4 * C,
                    (size_t)vqgpt_scratch_threads() * Tm * Tm,
                    tile};
  float **ptrs[] = {&w->x, &w->ln, &w->qkv, &w->atty, &w->tmp, &w->h, &w->scores, &w->wtile};
  size_t total = 0, n = sizeof sizes / sizeof sizes[0];
  for (size_t i = 0; i < n; i++) total += sizes[i];
  if (vqgpt_memory_check(total * sizeof(float), "the sampling activations")) return -1;
  w->block = malloc(total * sizeof(float));
  if (!w->block)
    return vqgpt_error("out of memory for the sampling activations (%.1f MB)", total * 4.0 / 1e6);
  float *q = w->block;
  for (size_t i = 0; i < n; i++) {
    *ptrs[i] = q;
    q += sizes[i];
  }
  w->rows = rows;
  return 0;
}

// One Linear of the sampling forward: w32 + at, or w16 + at for a half-weight model.
static void sample_linear(const gpt *m, gpt_work *w, float *out, const float *in, const float *w32,
                          const uint16_t *w16, size_t at, const float *bias, int N, int C, int OC) {
  if (m->half_weights)
    vqgpt_linear_forward_half(out, in, w16 + at, m->half_fmt, bias, N, C, OC, w->wtile);
  else
    vqgpt_linear_forward(out, in, w32 + at, bias, N, C, OC);
}

// x (C) = token embedding + position embedding.
static void embed(const gpt *m, float *x, int32_t token, int pos) {
  int C = m->cfg.n_embd;
  const float *pe = m->p.pos_emb + (size_t)pos * C;
  if (m->half_weights)
    vqgpt_half_to_f32_array(x, m->h.tok_emb + (size_t)token * C, C, m->half_fmt);
  else
    memcpy(x, m->p.tok_emb + (size_t)token * C, C * sizeof(float));
  for (int i = 0; i < C; i++) x[i] += pe[i];
}

static void add_inplace(float *x, const float *y, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] += y[i];
}

// Where one sequence's new rows sit in a batched forward.
typedef struct {
  gpt_kv *kv;
  int b;                  // sequence within the part's cache
  const int32_t *tokens;  // (count) its new tokens
  int start;              // position of its first new row
  int count;              // new rows
  size_t row;             // index of its first new row among all rows
} extend_seq;

// Stores the keys and values of every new row of layer l into the caches.
static void store_kv(const extend_seq *sq, int n_seq, const float *qkv, int l, int C, int H) {
  int hs = C / H;
  for (int s = 0; s < n_seq; s++) {
    gpt_kv *kv = sq[s].kv;
    size_t plane = (size_t)kv->B * kv->Tmax * C;
    float *kc = kv->k + (size_t)l * plane, *vc = kv->v + (size_t)l * plane;
    for (int t = 0; t < sq[s].count; t++) {
      const float *row = qkv + (sq[s].row + t) * 3 * C;
      for (int h = 0; h < H; h++) {
        size_t at = (((size_t)sq[s].b * H + h) * kv->Tmax + sq[s].start + t) * hs;
        memcpy(kc + at, row + C + (size_t)h * hs, hs * sizeof(float));
        memcpy(vc + at, row + 2 * C + (size_t)h * hs, hs * sizeof(float));
      }
    }
  }
}

// Attention of layer l. All new rows of each sequence (only_last false; outputs at their rows)
// or only its last one (only_last; sequence s's output at row s). The (sequence, head) pairs
// run in parallel, each with single-threaded products.
static void attend(const extend_seq *sq, int n_seq, gpt_work *w, int l, int C, int H,
                   bool only_last) {
  int hs = C / H, Tm = sq[0].kv->Tmax;
  size_t work = 0;
  for (int s = 0; s < n_seq; s++)
    work += (size_t)(only_last ? 1 : sq[s].count) * (sq[s].start + sq[s].count) * hs;
  bool par = n_seq * H >= vqgpt_team_threads() && work >= VQGPT_PAR_MIN;
#pragma omp parallel for schedule(dynamic) if (par)
  for (int sh = 0; sh < n_seq * H; sh++) {
    const extend_seq *e = &sq[sh / H];
    int h = sh % H, n = only_last ? 1 : e->count, first = e->start + e->count - n;
    size_t plane = (size_t)e->kv->B * e->kv->Tmax * C;
    size_t head = ((size_t)e->b * H + h) * e->kv->Tmax * hs;
    const float *k = e->kv->k + (size_t)l * plane + head, *v = e->kv->v + (size_t)l * plane + head;
    const float *q = w->qkv + (e->row + e->count - n) * 3 * C + (size_t)h * hs;
    float *y = w->atty + (only_last ? (size_t)(sh / H) : e->row) * C + (size_t)h * hs;
    float *scores = w->scores + (size_t)omp_get_thread_num() * Tm * Tm;
    vqgpt_causal_attention_extend(y, C, q, 3 * C, k, v, first, n, hs, scores);
  }
}

// After attention (in w->atty) for `rows` rows: the output projection, the MLP and both
// residual additions into w->x.
static void project_and_mlp(const gpt *m, gpt_work *w, int l, int rows) {
  const gpt_params *p = &m->p;
  const gpt_half_params *h = &m->h;
  int C = m->cfg.n_embd;
  size_t Lc = (size_t)l * C, n = (size_t)rows;
  sample_linear(m, w, w->tmp, w->atty, p->proj_w, h->proj_w, Lc * C, p->proj_b + Lc, rows, C, C);
  add_inplace(w->x, w->tmp, n * C);
  vqgpt_layernorm_forward(w->ln, NULL, NULL, w->x, p->ln2_w + Lc, p->ln2_b + Lc, rows, C,
                          GPT_LN_EPS);
  sample_linear(m, w, w->h, w->ln, p->fc_w, h->fc_w, Lc * 4 * C, p->fc_b + Lc * 4, rows, C, 4 * C);
  vqgpt_gelu_forward(w->h, w->h, n * 4 * C);
  sample_linear(m, w, w->tmp, w->h, p->fcproj_w, h->fcproj_w, Lc * 4 * C, p->fcproj_b + Lc, rows,
                4 * C, C);
  add_inplace(w->x, w->tmp, n * C);
}

// Lays the parts' sequences out as rows and checks positions and tokens; returns the row count
// or -1.
static long extend_layout(const gpt *m, gpt_part *parts, int n_parts, extend_seq *sq) {
  int V = m->cfg.vocab_size;
  size_t row = 0;
  int s = 0;
  for (int k = 0; k < n_parts; k++) {
    gpt_kv *kv = parts[k].kv;
    int start = parts[k].restart ? 0 : kv->T, count = parts[k].count;
    if (count < 1 || start + count > kv->Tmax) {
      if (start == 0)
        vqgpt_error("GPT prefill of %d tokens: block_size is %d", count, kv->Tmax);
      else
        vqgpt_error("GPT context full: block_size %d reached", kv->Tmax);
      return -1;
    }
    for (int b = 0; b < kv->B; b++, s++) {
      const int32_t *tokens = parts[k].tokens + (size_t)b * count;
      for (int t = 0; t < count; t++)
        if (tokens[t] < 0 || tokens[t] >= V) {
          vqgpt_error("GPT input token %d not in [0, %d)", tokens[t], V);
          return -1;
        }
      sq[s] = (extend_seq){kv, b, tokens, start, count, row};
      row += (size_t)count;
    }
  }
  return (long)row;
}

int vqgpt_gpt_extend(const gpt *m, gpt_work *w, gpt_part *parts, int n_parts, float *logits) {
  const gpt_config *c = &m->cfg;
  const gpt_params *p = &m->p;
  const gpt_half_params *h = &m->h;
  int C = c->n_embd, L = c->n_layer, H = c->n_head;
  int n_seq = 0;
  for (int k = 0; k < n_parts; k++) {
    if (parts[k].kv->Tmax != c->block_size) return vqgpt_error("KV cache of another GPT");
    n_seq += parts[k].kv->B;
  }
  if (n_seq < 1) return vqgpt_error("GPT forward of no sequences");
  extend_seq *sq = malloc((size_t)n_seq * sizeof *sq);
  if (!sq) return vqgpt_error("out of memory");
  long rows = extend_layout(m, parts, n_parts, sq);
  if (rows < 0 || work_reserve(w, m, (size_t)rows)) {
    free(sq);
    return -1;
  }
  for (int s = 0; s < n_seq; s++)
    for (int t = 0; t < sq[s].count; t++)
      embed(m, w->x + (sq[s].row + t) * C, sq[s].tokens[t], sq[s].start + t);
  for (int l = 0; l < L; l++) {
    size_t Lc = (size_t)l * C;
    vqgpt_layernorm_forward(w->ln, NULL, NULL, w->x, p->ln1_w + Lc, p->ln1_b + Lc, (int)rows, C,
                            GPT_LN_EPS);
    sample_linear(m, w, w->qkv, w->ln, p->qkv_w, h->qkv_w, Lc * 3 * C, p->qkv_b + Lc * 3, (int)rows,
                  C, 3 * C);
    store_kv(sq, n_seq, w->qkv, l, C, H);
    bool last = l == L - 1;
    attend(sq, n_seq, w, l, C, H, last);
    if (last)  // only the rows that feed a logit go on: each sequence's newest, compacted
      for (int s2 = 0; s2 < n_seq; s2++)
        memmove(w->x + (size_t)s2 * C, w->x + (sq[s2].row + sq[s2].count - 1) * C,
                C * sizeof(float));
    project_and_mlp(m, w, l, last ? n_seq : (int)rows);
  }
  vqgpt_layernorm_forward(w->ln, NULL, NULL, w->x, p->lnf_w, p->lnf_b, n_seq, C, GPT_LN_EPS);
  sample_linear(m, w, logits, w->ln, p->head_w, h->head_w, 0, NULL, n_seq, C, c->vocab_size);
  for (int s = 0; s < n_seq; s++) sq[s].kv->T = sq[s].start + sq[s].count;
  free(sq);
  return 0;
}

int vqgpt_gpt_step(const gpt *m, gpt_kv *kv, const int32_t *tokens, float *logits) {
  gpt_part part = {kv, tokens, 1, false};
  return vqgpt_gpt_extend(m, &kv->work, &part, 1, logits);
}

int vqgpt_gpt_prefill(const gpt *m, gpt_kv *kv, const int32_t *tokens, int T, float *logits) {
  gpt_part part = {kv, tokens, T, true};
  return vqgpt_gpt_extend(m, &kv->work, &part, 1, logits);
}
