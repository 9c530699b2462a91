#include "stage1_vqgan/discriminator.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/activation.h"
#include "core/batchnorm.h"
#include "core/conv2d.h"
#include "core/error.h"
#include "core/rng.h"
#include "weights/json.h"
#include "weights/safetensors.h"

#define PG_MAX_LAYERS (PATCHGAN_MAX_N_LAYERS + 2)
#define PG_SLOPE 0.2f
#define PG_EPS 1e-5f
#define PG_MOMENTUM 0.1f
#define PG_MAX_FLOATS ((size_t)1 << 32)  // 16 GiB of parameters, activations and scratch

typedef struct {
  conv2d_shape s;
  int module;  // main.{module} of the convolution; its BatchNorm is main.{module + 1}
  int h_in, w_in, h_out, w_out;
  bool bn, lrelu;
  float *w, *b, *gamma, *beta;      // into the parameter block; b, gamma, beta may be NULL
  float *dw, *db, *dgamma, *dbeta;  // the same places in the gradient block
  float *running_mean, *running_var;
  int64_t num_batches_tracked;
} pg_layer;

// One forward pass kept for backward.
typedef struct {
  int B;
  bool valid, train;
  float *x;                   // (B, input_nc, H, W)
  float *out[PG_MAX_LAYERS];  // (B, c_out, h_out, w_out) conv outputs: the BatchNorm inputs
  float *act[PG_MAX_LAYERS];  // (B, c_out, h_out, w_out) after LeakyReLU (aliases out without BN)
  float *mean[PG_MAX_LAYERS], *rstd[PG_MAX_LAYERS];  // (c_out) batch statistics
} pg_slot;

struct patchgan {
  patchgan_config cfg;
  int B, H, W, n_slots, n_layers;
  pg_layer layer[PG_MAX_LAYERS];
  float *params, *grads;
  size_t n_params;
  pg_slot *slots;
  float *gbuf[2];  // (B, C, h, w) ping-pong input gradients, sized for the largest layer
  float *scratch;  // conv2d scratch
  float *arena;    // every float buffer above lives here
  bool sync_bn;    // train-mode statistics over every rank's batch (data-parallel training)
};

int vqgpt_patchgan_config_parse(patchgan_config *cfg, const char *json, const char *source) {
  if (!json) return vqgpt_error("%s: no discriminator config", source);
  json_value *v = vqgpt_json_parse(json, strlen(json));
  if (!v) return vqgpt_error("%s: config: %s", source, vqgpt_last_error());
  int64_t in_nc, ndf, nl;
  bool ok =
      (vqgpt_json_get_int(v, "input_nc", &in_nc) || vqgpt_json_get_int(v, "in_channels", &in_nc)) &&
      vqgpt_json_get_int(v, "ndf", &ndf) && vqgpt_json_get_int(v, "n_layers", &nl);
  vqgpt_json_free(v);
  if (!ok) return vqgpt_error("%s: config needs integer input_nc, ndf and n_layers", source);
  if (in_nc < 1 || in_nc > PATCHGAN_MAX_CHANNELS || ndf < 1 || ndf > PATCHGAN_MAX_CHANNELS ||
      nl < 1 || nl > PATCHGAN_MAX_N_LAYERS)
    return vqgpt_error("%s: config out of range (input_nc %lld, ndf %lld, n_layers %lld)", source,
                       (long long)in_nc, (long long)ndf, (long long)nl);
  cfg->input_nc = (int)in_nc;
  cfg->ndf = (int)ndf;
  cfg->n_layers = (int)nl;
  return 0;
}

static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

// Lays out the layers and carves every buffer from one zeroed allocation.
static patchgan *pg_build(const patchgan_config *cfg, int B, int H, int W, int n_slots) {
  if (cfg->input_nc < 1 || cfg->input_nc > PATCHGAN_MAX_CHANNELS || cfg->ndf < 1 ||
      cfg->ndf > PATCHGAN_MAX_CHANNELS || cfg->n_layers < 1 ||
      cfg->n_layers > PATCHGAN_MAX_N_LAYERS) {
    vqgpt_error("patchgan: invalid config (input_nc %d, ndf %d, n_layers %d)", cfg->input_nc,
                cfg->ndf, cfg->n_layers);
    return NULL;
  }
  if (B < 1 || H < 1 || W < 1 || n_slots < 1) {
    vqgpt_error("patchgan: invalid build shape B %d, %dx%d, %d slots", B, H, W, n_slots);
    return NULL;
  }
  patchgan *d = calloc(1, sizeof *d);
  if (!d) {
    vqgpt_error("patchgan: out of memory");
    return NULL;
  }
  d->cfg = *cfg;
  d->B = B, d->H = H, d->W = W, d->n_slots = n_slots;
  d->n_layers = cfg->n_layers + 2;
  int c = cfg->input_nc, h = H, w = W;
  for (int l = 0; l < d->n_layers; l++) {
    pg_layer *L = &d->layer[l];
    const bool last = l == d->n_layers - 1;
    const int stride = l < cfg->n_layers ? 2 : 1;
    int c_out;
    if (l == 0)
      c_out = cfg->ndf;
    else if (last)
      c_out = 1;
    else
      c_out = cfg->ndf * (l < 3 ? 1 << l : 8);
    L->s = (conv2d_shape){c, c_out, 4, 4, stride, 1, 1, 1, 1};
    L->module = l == 0 ? 0 : 2 + 3 * (l - 1);
    L->bn = l > 0 && !last;
    L->lrelu = !last;
    L->h_in = h, L->w_in = w;
    L->h_out = vqgpt_conv2d_out_h(&L->s, h), L->w_out = vqgpt_conv2d_out_w(&L->s, w);
    if (L->h_out < 1 || L->w_out < 1) {
      vqgpt_error("patchgan: %dx%d input is too small for %d layers", H, W, cfg->n_layers);
      free(d);
      return NULL;
    }
    c = c_out, h = L->h_out, w = L->w_out;
  }

  // Sizes in floats. Activations are rounded to 16 for alignment; parameters are packed, so
  // that the block holds exactly the model's parameters.
  size_t n_params = 0, n_buf = 0, n_slot = 0, g_max = 0, scr = 0;
  for (int l = 0; l < d->n_layers; l++) {
    const pg_layer *L = &d->layer[l];
    const size_t co = (size_t)L->s.c_out, act = (size_t)B * co * L->h_out * L->w_out;
    n_params += co * L->s.c_in * 16 + (L->bn ? 2 * co : co);  // conv weight + bias or BN affine
    if (L->bn) n_buf += 2 * pad16(co);
    n_slot += pad16(act) + (L->bn ? pad16(act) + 2 * pad16(co) : 0);
    if (act > g_max) g_max = act;
    const size_t s = vqgpt_conv2d_scratch_size(&L->s, L->h_in, L->w_in);
    if (s > scr) scr = s;
  }
  n_slot += pad16((size_t)B * cfg->input_nc * H * W);
  g_max = pad16(g_max);  // layer outputs only: the input's gradient goes to the caller's dx
  const size_t total =
      2 * pad16(n_params) + n_buf + (size_t)n_slots * n_slot + 2 * g_max + pad16(scr);
  // Channels, batch and sides are bounded (at most 8 * PATCHGAN_MAX_CHANNELS, int sides), so the
  // size_t sums above cannot wrap on a 64-bit host; a total beyond the limit is a mistake.
  if (total > PG_MAX_FLOATS) {
    vqgpt_error(
        "patchgan: ndf %d, %d layers at batch %d of %dx%d needs %zu MiB, more than the "
        "%zu MiB supported",
        cfg->ndf, cfg->n_layers, B, H, W, total / (1 << 18), PG_MAX_FLOATS / (1 << 18));
    free(d);
    return NULL;
  }
  d->slots = calloc((size_t)n_slots, sizeof *d->slots);
  d->arena = calloc(total, sizeof(float));
  if (!d->slots || !d->arena) {
    vqgpt_error("patchgan: out of memory for %zu floats", total);
    free(d->slots);
    free(d->arena);
    free(d);
    return NULL;
  }
  float *p = d->arena;
  d->params = p, p += pad16(n_params);
  d->grads = p, p += pad16(n_params);
  d->n_params = n_params;
  float *pp = d->params, *gp = d->grads;
  for (int l = 0; l < d->n_layers; l++) {
    pg_layer *L = &d->layer[l];
    const size_t co = (size_t)L->s.c_out, nw = co * L->s.c_in * 16;
    L->w = pp, L->dw = gp, pp += nw, gp += nw;
    if (!L->bn) {
      L->b = pp, L->db = gp, pp += co, gp += co;
    } else {
      L->gamma = pp, L->dgamma = gp, pp += co, gp += co;
      L->beta = pp, L->dbeta = gp, pp += co, gp += co;
      L->running_mean = p, p += pad16(co);
      L->running_var = p, p += pad16(co);
      for (size_t i = 0; i < co; i++) L->running_var[i] = 1.0f;
    }
  }
  for (int s = 0; s < n_slots; s++) {
    pg_slot *S = &d->slots[s];
    S->x = p, p += pad16((size_t)B * cfg->input_nc * H * W);
    for (int l = 0; l < d->n_layers; l++) {
      const pg_layer *L = &d->layer[l];
      const size_t co = (size_t)L->s.c_out, act = (size_t)B * co * L->h_out * L->w_out;
      S->out[l] = p, p += pad16(act);
      if (L->bn) {
        S->act[l] = p, p += pad16(act);
        S->mean[l] = p, p += pad16(co);
        S->rstd[l] = p, p += pad16(co);
      } else {
        S->act[l] = S->out[l];
      }
    }
  }
  d->gbuf[0] = p, p += g_max;
  d->gbuf[1] = p, p += g_max;
  d->scratch = p;
  return d;
}

patchgan *vqgpt_patchgan_create(const patchgan_config *cfg, int B, int H, int W, int n_slots,
                                uint64_t *rng) {
  patchgan *d = pg_build(cfg, B, H, W, n_slots);
  if (!d) return NULL;
  for (int l = 0; l < d->n_layers; l++) {
    pg_layer *L = &d->layer[l];
    const size_t co = (size_t)L->s.c_out, nw = co * L->s.c_in * 16;
    vqgpt_rng_fill_normal(rng, L->w, nw, 0.0f, 0.02f);
    if (L->b) {
      const double bound = 1.0 / sqrt((double)L->s.c_in * 16);
      for (size_t i = 0; i < co; i++)
        L->b[i] = (float)(bound * (2.0 * vqgpt_rng_uniform_double(rng) - 1.0));
    }
    if (L->gamma) vqgpt_rng_fill_normal(rng, L->gamma, co, 1.0f, 0.02f);
  }
  return d;
}

void vqgpt_patchgan_free(patchgan *d) {
  if (!d) return;
  free(d->arena);
  free(d->slots);
  free(d);
}

const patchgan_config *vqgpt_patchgan_get_config(const patchgan *d) { return &d->cfg; }
int vqgpt_patchgan_out_h(const patchgan *d) { return d->layer[d->n_layers - 1].h_out; }
int vqgpt_patchgan_out_w(const patchgan *d) { return d->layer[d->n_layers - 1].w_out; }
float *vqgpt_patchgan_params(patchgan *d) { return d->params; }
float *vqgpt_patchgan_grads(patchgan *d) { return d->grads; }
size_t vqgpt_patchgan_num_params(const patchgan *d) { return d->n_params; }
void vqgpt_patchgan_set_sync_batchnorm(patchgan *d, bool on) { d->sync_bn = on; }
void vqgpt_patchgan_zero_grad(patchgan *d) { memset(d->grads, 0, d->n_params * sizeof *d->grads); }

// A float tensor of the model under its state_dict name, with its shape and gradient.
typedef struct {
  char name[48];
  float *data, *grad;
  size_t numel;
  int ndim;
  int64_t shape[4];
} pg_tensor;

// The idx-th float tensor in state_dict order (a conv's weight [and bias], then its norm's
// weight, bias, running_mean, running_var); false past the end.
static bool pg_tensor_at(const patchgan *d, int idx, pg_tensor *t) {
  int l = 0;
  for (; l < d->n_layers; l++) {
    const int n = d->layer[l].bn ? 5 : 2;
    if (idx < n) break;
    idx -= n;
  }
  if (l == d->n_layers) return false;
  const pg_layer *L = &d->layer[l];
  const int64_t co = L->s.c_out;
  t->ndim = 1;
  t->shape[0] = co;
  t->numel = (size_t)co;
  t->grad = NULL;
  switch (idx) {
    case 0:
      snprintf(t->name, sizeof t->name, "main.%d.weight", L->module);
      t->data = L->w, t->grad = L->dw, t->ndim = 4;
      t->shape[1] = L->s.c_in, t->shape[2] = 4, t->shape[3] = 4;
      t->numel = (size_t)co * L->s.c_in * 16;
      break;
    case 1:
      if (L->bn) {
        snprintf(t->name, sizeof t->name, "main.%d.weight", L->module + 1);
        t->data = L->gamma, t->grad = L->dgamma;
      } else {
        snprintf(t->name, sizeof t->name, "main.%d.bias", L->module);
        t->data = L->b, t->grad = L->db;
      }
      break;
    case 2:
      snprintf(t->name, sizeof t->name, "main.%d.bias", L->module + 1);
      t->data = L->beta, t->grad = L->dbeta;
      break;
    case 3:
      snprintf(t->name, sizeof t->name, "main.%d.running_mean", L->module + 1);
      t->data = L->running_mean;
      break;
    default:
      snprintf(t->name, sizeof t->name, "main.%d.running_var", L->module + 1);
      t->data = L->running_var;
      break;
  }
  return true;
}

float *vqgpt_patchgan_tensor(patchgan *d, const char *name, size_t *numel, float **grad) {
  pg_tensor t;
  for (int i = 0; pg_tensor_at(d, i, &t); i++)
    if (!strcmp(t.name, name)) {
      if (numel) *numel = t.numel;
      if (grad) *grad = t.grad;
      return t.data;
    }
  return NULL;
}

int64_t vqgpt_patchgan_num_batches_tracked(const patchgan *d, int module) {
  for (int l = 0; l < d->n_layers; l++)
    if (d->layer[l].bn && d->layer[l].module + 1 == module) return d->layer[l].num_batches_tracked;
  return -1;
}

patchgan *vqgpt_patchgan_load(const char *path, int B, int H, int W, int n_slots) {
  st_file f;
  if (vqgpt_st_open(&f, path)) return NULL;
  patchgan_config cfg;
  if (vqgpt_st_check_format(&f, "taming-patchgan", "a PatchGAN discriminator") ||
      vqgpt_patchgan_config_parse(&cfg, vqgpt_st_meta(&f, "config"), path)) {
    vqgpt_st_close(&f);
    return NULL;
  }
  patchgan *d = pg_build(&cfg, B, H, W, n_slots);
  if (!d) {
    vqgpt_st_close(&f);
    return NULL;
  }
  pg_tensor t;
  for (int i = 0; pg_tensor_at(d, i, &t); i++)
    if (vqgpt_st_read_weights(&f, t.name, t.data, t.ndim, t.shape)) goto fail;
  for (int l = 0; l < d->n_layers; l++) {
    pg_layer *L = &d->layer[l];
    if (!L->bn) continue;
    char name[48];
    snprintf(name, sizeof name, "main.%d.num_batches_tracked", L->module + 1);
    const st_tensor *st = vqgpt_st_find(&f, name);
    if (!st) continue;  // older PyTorch state dicts have no counter; it does not affect results
    int32_t v;
    if (st->numel != 1) {
      vqgpt_error("%s: tensor '%s' should hold one value", path, name);
      goto fail;
    }
    if (vqgpt_st_read_i32(&f, name, &v, st->ndim, st->shape)) goto fail;
    L->num_batches_tracked = v;
  }
  if (vqgpt_st_check_all_used(&f, NULL)) goto fail;
  vqgpt_st_close(&f);
  return d;
fail:
  vqgpt_st_close(&f);
  vqgpt_patchgan_free(d);
  return NULL;
}

int vqgpt_patchgan_save(const patchgan *d, const char *path) {
  st_writer *w = vqgpt_st_writer_new();
  if (!w) return vqgpt_error("%s: out of memory", path);
  char config[128];
  snprintf(config, sizeof config, "{\"input_nc\":%d,\"ndf\":%d,\"n_layers\":%d}", d->cfg.input_nc,
           d->cfg.ndf, d->cfg.n_layers);
  int rc = vqgpt_st_writer_meta(w, "format", "taming-patchgan") ||
           vqgpt_st_writer_meta(w, "config", config);
  pg_tensor t;
  for (int i = 0; !rc && pg_tensor_at(d, i, &t); i++)
    rc = vqgpt_st_writer_add(w, t.name, ST_F32, t.ndim, t.shape, t.data);
  const int64_t one = 1;
  for (int l = 0; !rc && l < d->n_layers; l++) {
    if (!d->layer[l].bn) continue;
    char name[48];
    snprintf(name, sizeof name, "main.%d.num_batches_tracked", d->layer[l].module + 1);
    rc = vqgpt_st_writer_add(w, name, ST_I64, 1, &one, &d->layer[l].num_batches_tracked);
  }
  if (!rc) rc = vqgpt_st_writer_save(w, path);
  vqgpt_st_writer_free(w);
  return rc ? -1 : 0;
}

static bool bad_slot(const patchgan *d, int slot) {
  if (slot >= 0 && slot < d->n_slots) return false;
  vqgpt_error("patchgan: slot %d of %d", slot, d->n_slots);
  return true;
}

int vqgpt_patchgan_forward(patchgan *d, int slot, const float *x, int B, bool train,
                           float *logits) {
  if (bad_slot(d, slot)) return -1;
  if (B < 1 || B > d->B) return vqgpt_error("patchgan: batch %d, built for at most %d", B, d->B);
  const pg_layer *lastbn = &d->layer[d->n_layers - 2];
  if (train && (size_t)B * lastbn->h_out * lastbn->w_out < 2)
    return vqgpt_error("patchgan: train mode needs more than one value per channel");
  pg_slot *S = &d->slots[slot];
  S->valid = false;
  memcpy(S->x, x, (size_t)B * d->cfg.input_nc * d->H * d->W * sizeof *x);
  const float *in = S->x;  // (B, c_in, h_in, w_in)
  for (int l = 0; l < d->n_layers; l++) {
    pg_layer *L = &d->layer[l];
    const int co = L->s.c_out, hw = L->h_out * L->w_out;
    const size_t n = (size_t)B * co * hw;
    vqgpt_conv2d_forward(S->out[l], in, L->w, L->b, &L->s, B, L->h_in, L->w_in, d->scratch);
    if (L->bn) {
      if (train && d->sync_bn) {
        if (vqgpt_batchnorm_forward_train_dist(S->act[l], S->mean[l], S->rstd[l], L->running_mean,
                                               L->running_var, S->out[l], L->gamma, L->beta, B, co,
                                               hw, PG_EPS, PG_MOMENTUM))
          return -1;
        L->num_batches_tracked++;
      } else if (train) {
        vqgpt_batchnorm_forward_train(S->act[l], S->mean[l], S->rstd[l], L->running_mean,
                                      L->running_var, S->out[l], L->gamma, L->beta, B, co, hw,
                                      PG_EPS, PG_MOMENTUM);
        L->num_batches_tracked++;
      } else {
        vqgpt_batchnorm_forward_eval(S->act[l], S->out[l], L->gamma, L->beta, L->running_mean,
                                     L->running_var, B, co, hw, PG_EPS);
      }
    }
    if (L->lrelu) vqgpt_leaky_relu_forward(S->act[l], S->act[l], n, PG_SLOPE);
    in = S->act[l];
  }
  const pg_layer *last = &d->layer[d->n_layers - 1];
  memcpy(logits, S->out[d->n_layers - 1], (size_t)B * last->h_out * last->w_out * sizeof *logits);
  S->B = B, S->train = train, S->valid = true;
  return 0;
}

int vqgpt_patchgan_repeat_train_stats(patchgan *d, int slot) {
  if (bad_slot(d, slot)) return -1;
  const pg_slot *S = &d->slots[slot];
  if (!S->valid || !S->train)
    return vqgpt_error("patchgan: no train-mode forward pass in slot %d to repeat", slot);
  for (int l = 0; l < d->n_layers; l++) {
    pg_layer *L = &d->layer[l];
    if (!L->bn) continue;
    if (!d->sync_bn)
      vqgpt_batchnorm_update_running(L->running_mean, L->running_var, S->out[l], S->B, L->s.c_out,
                                     L->h_out * L->w_out, PG_MOMENTUM);
    else if (vqgpt_batchnorm_update_running_dist(L->running_mean, L->running_var, S->out[l], S->B,
                                                 L->s.c_out, L->h_out * L->w_out, PG_MOMENTUM))
      return -1;
    L->num_batches_tracked++;
  }
  return 0;
}

int vqgpt_patchgan_backward(patchgan *d, int slot, const float *dlogits, float *dx,
                            bool param_grads) {
  if (bad_slot(d, slot)) return -1;
  pg_slot *S = &d->slots[slot];
  if (!S->valid || !S->train)
    return vqgpt_error("patchgan: backward needs a train-mode forward pass in slot %d", slot);
  const int B = S->B;
  const pg_layer *last = &d->layer[d->n_layers - 1];
  float *g = d->gbuf[0];  // (B, c_out, h_out, w_out) gradient at the current layer's output
  memcpy(g, dlogits, (size_t)B * last->h_out * last->w_out * sizeof *g);
  for (int l = d->n_layers - 1; l >= 0; l--) {
    pg_layer *L = &d->layer[l];
    const int co = L->s.c_out, hw = L->h_out * L->w_out;
    const size_t n = (size_t)B * co * hw;
    // LeakyReLU ran in place, so its saved output stands in for its input: with slope > 0 both
    // have the same sign, and PyTorch's in-place LeakyReLU backward also reads the output.
    if (L->lrelu) vqgpt_leaky_relu_backward(g, g, S->act[l], n, PG_SLOPE);
    if (L->bn && !d->sync_bn)
      vqgpt_batchnorm_backward(g, param_grads ? L->dgamma : NULL, param_grads ? L->dbeta : NULL, g,
                               S->out[l], S->mean[l], S->rstd[l], L->gamma, B, co, hw);
    else if (L->bn && vqgpt_batchnorm_backward_dist(g, param_grads ? L->dgamma : NULL,
                                                    param_grads ? L->dbeta : NULL, g, S->out[l],
                                                    S->mean[l], S->rstd[l], L->gamma, B, co, hw))
      return -1;
    float *gin = l > 0 ? d->gbuf[g == d->gbuf[0]] : dx;
    const float *in = l > 0 ? S->act[l - 1] : S->x;
    if (gin || param_grads)
      vqgpt_conv2d_backward(gin, param_grads ? L->dw : NULL, param_grads ? L->db : NULL, g, in,
                            L->w, &L->s, B, L->h_in, L->w_in, d->scratch);
    g = gin;
  }
  return 0;
}
