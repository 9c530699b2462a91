#include "stage1_vqgan/vqgan_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/adamw.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/finite.h"
#include "core/loss.h"
#include "core/rng.h"
#include "stage1_vqgan/vqgan_layers.h"
#include "stage1_vqgan/vqgan_tape.h"
#include "weights/safetensors.h"

#define ADAM_BETA1 0.5f
#define ADAM_BETA2 0.9f
#define ADAM_EPS 1e-8f

struct vqgan_trainer {
  vqgan *g;
  patchgan *d;
  lpips *lp;
  vqgan_train_opts o;  // o.batch: this rank's images per step
  int global_batch;    // all ranks' images per step, for the learning rate
  vqgan_tape *tape;
  size_t n_img, n_logits, n_gl, n_d;
  float *g_grad, *g_m, *g_v;                         // generator parameter layout
  float *d_m, *d_v;                                  // discriminator parameter layout
  float *drec, *dgan, *lp_dx;                        // (B, 3, S, S)
  float *logits_real, *logits_fake, *dreal, *dfake;  // (B, 1, oh, ow)
  float *gl_rec, *gl_gan, *gl_scratch;               // decoder.conv_out.weight gradients
  float *lp_values, *lp_dvalues;                     // (B)
  float *z_all;           // (ranks * B, C, N) every rank's encoder outputs; NULL for one rank
  long g_steps, d_steps;  // Adam's own step counters
};

void vqgpt_vqgan_train_defaults(vqgan_train_opts *o) {
  *o = (vqgan_train_opts){.batch = 4,
                          .size = 64,
                          .base_lr = 4.5e-6,
                          .disc_weight = 1.0,
                          .disc_factor = 1.0,
                          .disc_start = 10000,
                          .codebook_weight = 1.0,
                          .perceptual_weight = 1.0,
                          .hinge = true,
                          .legacy_quant = true,
                          .disc = {.input_nc = 3, .ndf = 64, .n_layers = 3},
                          .ranks = 1};
}

void vqgpt_vqgan_trainer_free(vqgan_trainer *t) {
  if (!t) return;
  vqgpt_vqgan_tape_free(t->tape);
  float *bufs[] = {t->g_grad, t->g_m,    t->g_v,         t->d_m,         t->d_v,        t->drec,
                   t->dgan,   t->lp_dx,  t->logits_real, t->logits_fake, t->dreal,      t->dfake,
                   t->gl_rec, t->gl_gan, t->gl_scratch,  t->lp_values,   t->lp_dvalues, t->z_all};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
  free(t);
}

vqgan_trainer *vqgpt_vqgan_trainer_new(vqgan *g, patchgan *d, lpips *lp,
                                       const vqgan_train_opts *o) {
  if (g->cfg.quantizer != VQGAN_NEAREST) {
    vqgpt_error("training a VQGAN with a Gumbel quantizer is not supported (inference only)");
    return NULL;
  }
  vqgan_trainer *t = calloc(1, sizeof *t);
  if (!t) {
    vqgpt_error("out of memory");
    return NULL;
  }
  t->g = g;
  t->d = d;
  t->lp = lp;
  t->o = *o;
  if (!lp) t->o.perceptual_weight = 0;
  if (o->ranks < 1 || o->batch % o->ranks || (o->ranks > 1 && o->ranks != vqgpt_dist_size())) {
    vqgpt_vqgan_trainer_free(t);
    vqgpt_error("a batch of %d images cannot be split over %d ranks (of %d running)", o->batch,
                o->ranks, vqgpt_dist_size());
    return NULL;
  }
  t->global_batch = o->batch;
  t->o.batch = o->batch / o->ranks;
  if (o->ranks > 1) vqgpt_patchgan_set_sync_batchnorm(d, true);
  int B = t->o.batch, S = o->size;
  t->tape = vqgpt_vqgan_tape_new(g, B, S, S);
  if (!t->tape) {
    vqgpt_vqgan_trainer_free(t);
    return NULL;
  }
  const vqgan_conv *last = &g->dec.conv_out;
  t->n_img = (size_t)B * 3 * S * S;
  t->n_logits = (size_t)B * vqgpt_patchgan_out_h(d) * vqgpt_patchgan_out_w(d);
  t->n_gl = (size_t)last->s.c_out * last->s.c_in * last->s.k_h * last->s.k_w;
  t->n_d = vqgpt_patchgan_num_params(d);
  size_t n_g = g->n_floats;
  struct {
    float **p;
    size_t n;
  } want[] = {{&t->g_grad, n_g},
              {&t->g_m, n_g},
              {&t->g_v, n_g},
              {&t->d_m, t->n_d},
              {&t->d_v, t->n_d},
              {&t->drec, t->n_img},
              {&t->dgan, t->n_img},
              {&t->lp_dx, t->n_img},
              {&t->logits_real, t->n_logits},
              {&t->logits_fake, t->n_logits},
              {&t->dreal, t->n_logits},
              {&t->dfake, t->n_logits},
              {&t->gl_rec, t->n_gl},
              {&t->gl_gan, t->n_gl},
              {&t->gl_scratch, vqgpt_conv2d_scratch_size(&last->s, S, S) + 1},
              {&t->lp_values, (size_t)B},
              {&t->lp_dvalues, (size_t)B}};
  if (o->ranks > 1) {
    int f = vqgpt_vqgan_factor(g);
    size_t z_all = (size_t)o->batch * g->cfg.embed_dim * (S / f) * (S / f);
    if (!(t->z_all = malloc(z_all * sizeof *t->z_all))) {
      vqgpt_vqgan_trainer_free(t);
      vqgpt_error("out of memory for VQGAN training state");
      return NULL;
    }
  }
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    *want[i].p = calloc(want[i].n ? want[i].n : 1, sizeof(float));
    if (!*want[i].p) {
      vqgpt_vqgan_trainer_free(t);
      vqgpt_error("out of memory for VQGAN training state");
      return NULL;
    }
  }
  return t;
}

const int32_t *vqgpt_vqgan_trainer_indices(const vqgan_trainer *t) {
  return vqgpt_vqgan_tape_indices(t->tape);
}

static double norm2(const float *x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return sqrt(s);
}

// Several ranks: x (n), each rank's gradient of its mean over its rows, becomes the mean over
// the ranks, the gradient of the mean over the whole batch (the ranks' rows are equally many).
static void average_over_ranks(const vqgan_trainer *t, float *x, size_t n) {
  if (t->o.ranks < 2) return;
  vqgpt_dist_allreduce_sum_f32(x, n);
  const float k = 1.0f / (float)t->o.ranks;
  for (size_t i = 0; i < n; i++) x[i] *= k;
}

// The same for loss values.
static void average_stats_over_ranks(const vqgan_trainer *t, double **v, int n) {
  if (t->o.ranks < 2) return;
  double sum[8];
  for (int i = 0; i < n; i++) sum[i] = *v[i];
  vqgpt_dist_allreduce_sum_f64(sum, (size_t)n);
  for (int i = 0; i < n; i++) *v[i] = sum[i] / t->o.ranks;
}

// |grad_GL of a loss| where dxrec is that loss's gradient w.r.t. the reconstruction; with
// several ranks the gradient of the whole batch's loss, so that lambda is the same everywhere.
static double last_layer_grad_norm(vqgan_trainer *t, const float *dxrec, float *gl) {
  const vqgan_conv *last = &t->g->dec.conv_out;
  memset(gl, 0, t->n_gl * sizeof *gl);
  vqgpt_conv2d_backward(NULL, gl, NULL, dxrec, vqgpt_vqgan_tape_last_input(t->tape),
                        t->g->w + last->w, &last->s, t->o.batch, t->o.size, t->o.size,
                        t->gl_scratch);
  average_over_ranks(t, gl, t->n_gl);
  return norm2(gl, t->n_gl);
}

// The reconstruction loss mean|x - xrec| + pw * mean_b LPIPS and its gradient in t->drec.
static int reconstruction_loss(vqgan_trainer *t, const float *x, vqgan_step_stats *s) {
  const float *xrec = vqgpt_vqgan_tape_xrec(t->tape);
  s->l1 = vqgpt_loss_l1_mean(t->drec, xrec, x, t->n_img);
  s->lpips = 0;
  if (t->o.perceptual_weight > 0) {
    int B = t->o.batch;
    if (vqgpt_lpips_forward(t->lp, xrec, x, B, t->lp_values)) return -1;
    for (int b = 0; b < B; b++) {
      s->lpips += t->lp_values[b] / B;
      t->lp_dvalues[b] = (float)(t->o.perceptual_weight / B);
    }
    if (vqgpt_lpips_backward(t->lp, t->lp_dvalues, t->lp_dx)) return -1;
    for (size_t i = 0; i < t->n_img; i++) t->drec[i] += t->lp_dx[i];
  }
  return 0;
}

// A loss term that is NaN or infinite stops training before any update uses it.
static int check_loss(const char *term, double value) {
  if (isfinite(value)) return 0;
  return vqgpt_error("training diverged: the %s loss is %g", term, value);
}

static int generator_step(vqgan_trainer *t, const float *x, double disc_factor,
                          vqgan_step_stats *s) {
  double qloss;
  memset(t->g_grad, 0, t->g->n_floats * sizeof *t->g_grad);
  if (vqgpt_vqgan_tape_forward(t->tape, x, &qloss)) return -1;
  s->qloss = qloss;
  if (reconstruction_loss(t, x, s)) return -1;
  s->g_loss = s->d_weight = 0;
  if (disc_factor > 0) {
    const float *xrec = vqgpt_vqgan_tape_xrec(t->tape);
    // Slot 1 keeps this pass for the discriminator step, which needs the same one.
    if (vqgpt_patchgan_forward(t->d, 1, xrec, t->o.batch, true, t->logits_fake)) return -1;
    s->g_loss = vqgpt_loss_g(t->dfake, t->logits_fake, t->n_logits);
    if (vqgpt_patchgan_backward(t->d, 1, t->dfake, t->dgan, false)) return -1;
    double rec_norm = last_layer_grad_norm(t, t->drec, t->gl_rec);
    double gan_norm = last_layer_grad_norm(t, t->dgan, t->gl_gan);
    double w = rec_norm / (gan_norm + 1e-4);
    w = w < 0 ? 0 : (w > 1e4 ? 1e4 : w);
    s->d_weight = w * t->o.disc_weight;
    float k = (float)(s->d_weight * disc_factor);
    for (size_t i = 0; i < t->n_img; i++) t->drec[i] += k * t->dgan[i];
  }
  average_stats_over_ranks(t, (double *[]){&s->l1, &s->lpips, &s->qloss, &s->g_loss}, 4);
  double nll = s->l1 + t->o.perceptual_weight * s->lpips;
  s->loss = nll + s->d_weight * disc_factor * s->g_loss + t->o.codebook_weight * s->qloss;
  if (check_loss("l1", s->l1) || check_loss("perceptual", s->lpips) ||
      check_loss("codebook", s->qloss) || check_loss("g_loss", s->g_loss) ||
      check_loss("adaptive-weight (lambda)", s->d_weight))
    return -1;
  if (vqgpt_vqgan_tape_backward(t->tape, t->drec, (float)t->o.codebook_weight, t->o.legacy_quant,
                                t->g_grad))
    return -1;
  average_over_ranks(t, t->g_grad, t->g->n_floats);
  float lr = (float)(t->o.base_lr * t->global_batch);
  if (!vqgpt_adamw_update(t->g->w, t->g_grad, t->g_m, t->g_v, t->g->n_floats, lr, ADAM_BETA1,
                          ADAM_BETA2, ADAM_EPS, 0.0f, ++t->g_steps))
    return vqgpt_error(
        "training diverged: the generator's update made a parameter non-finite "
        "(learning rate %g too high?)",
        lr);
  return 0;
}

static double mean(const float *x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += x[i];
  return s / n;
}

// Runs after generator_step on the same batch. The discriminator has not changed since the
// generator step ran it on the reconstruction (kept in slot 1, logits in t->logits_fake), so
// that pass is reused: only its BatchNorm running-statistics update is applied again, as the
// reference's second forward pass does.
static int discriminator_step(vqgan_trainer *t, const float *x, double disc_factor,
                              vqgan_step_stats *s) {
  int B = t->o.batch;
  vqgpt_patchgan_zero_grad(t->d);
  if (vqgpt_patchgan_forward(t->d, 0, x, B, true, t->logits_real) ||
      vqgpt_patchgan_repeat_train_stats(t->d, 1))
    return -1;
  float l = t->o.hinge ? vqgpt_loss_d_hinge(t->dreal, t->dfake, t->logits_real, t->n_logits,
                                            t->logits_fake, t->n_logits)
                       : vqgpt_loss_d_vanilla(t->dreal, t->dfake, t->logits_real, t->n_logits,
                                              t->logits_fake, t->n_logits);
  s->d_loss = disc_factor * l;
  s->logits_real = mean(t->logits_real, t->n_logits);
  s->logits_fake = mean(t->logits_fake, t->n_logits);
  average_stats_over_ranks(t, (double *[]){&s->d_loss, &s->logits_real, &s->logits_fake}, 3);
  if (check_loss("d_loss", s->d_loss)) return -1;
  for (size_t i = 0; i < t->n_logits; i++) {
    t->dreal[i] *= (float)disc_factor;
    t->dfake[i] *= (float)disc_factor;
  }
  if (vqgpt_patchgan_backward(t->d, 0, t->dreal, NULL, true) ||
      vqgpt_patchgan_backward(t->d, 1, t->dfake, NULL, true))
    return -1;
  average_over_ranks(t, vqgpt_patchgan_grads(t->d), t->n_d);
  float lr = (float)(t->o.base_lr * t->global_batch);
  if (!vqgpt_adamw_update(vqgpt_patchgan_params(t->d), vqgpt_patchgan_grads(t->d), t->d_m, t->d_v,
                          t->n_d, lr, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, 0.0f, ++t->d_steps))
    return vqgpt_error(
        "training diverged: the discriminator's update made a parameter "
        "non-finite (learning rate %g too high?)",
        lr);
  return 0;
}

int vqgpt_vqgan_trainer_step(vqgan_trainer *t, const float *x, long step, vqgan_step_stats *s) {
  memset(s, 0, sizeof *s);
  // adopt_weight: the GAN terms are off before disc_start. Their gradients would be zero, so
  // the discriminator is not run at all then.
  double disc_factor = step >= t->o.disc_start ? t->o.disc_factor : 0.0;
  s->disc_factor = disc_factor;
  if (generator_step(t, x, disc_factor, s)) return -1;
  if (disc_factor > 0 && discriminator_step(t, x, disc_factor, s)) return -1;
  return 0;
}

int vqgpt_vqgan_trainer_reinit_codes(vqgan_trainer *t, const bool *dead, uint64_t *rng) {
  const vqgan *g = t->g;
  int K = g->cfg.n_embed, C = g->cfg.embed_dim, f = vqgpt_vqgan_factor(g);
  int N = (t->o.size / f) * (t->o.size / f), B = t->o.batch;
  const float *z = vqgpt_vqgan_tape_z(t->tape);  // (B, C, N)
  if (t->z_all) {  // the whole batch's, in batch order (the ranks hold consecutive rows)
    vqgpt_dist_allgather_f32(z, t->z_all, (size_t)B * C * N);
    z = t->z_all;
    B = t->global_batch;
  }
  float *E = g->w + g->embedding;
  int replaced = 0;
  for (int k = 0; k < K; k++) {
    if (!dead[k]) continue;
    size_t pick = vqgpt_rng_below(rng, (uint64_t)B * N);
    size_t b = pick / N, n = pick % N;
    for (int c = 0; c < C; c++) {
      size_t row = g->embedding + (size_t)k * C + c;
      E[(size_t)k * C + c] = z[(b * C + c) * N + n];
      t->g_m[row] = t->g_v[row] = 0;
    }
    replaced++;
  }
  return replaced;
}

// Discriminator tensors are found by probing the reference's module indices.
#define DISC_MAX_MODULES (3 * PATCHGAN_MAX_N_LAYERS + 4)
static const char *const DISC_SUFFIXES[] = {"weight", "bias", "running_mean", "running_var"};

typedef int (*disc_tensor_fn)(void *ctx, const char *name, float *data, size_t numel);

static int for_each_disc_tensor(patchgan *d, disc_tensor_fn fn, void *ctx) {
  for (int i = 0; i < DISC_MAX_MODULES; i++)
    for (int j = 0; j < 4; j++) {
      char name[64];
      size_t numel;
      snprintf(name, sizeof name, "main.%d.%s", i, DISC_SUFFIXES[j]);
      float *x = vqgpt_patchgan_tensor(d, name, &numel, NULL);
      if (x && fn(ctx, name, x, numel)) return -1;
    }
  return 0;
}

typedef struct {
  st_writer *w;
  char (*names)[96];
  size_t n;
} save_ctx;

static int add_disc_tensor(void *p, const char *name, float *data, size_t numel) {
  save_ctx *c = p;
  snprintf(c->names[c->n], sizeof c->names[0], "loss.discriminator.%s", name);
  int64_t shape[1] = {(int64_t)numel};
  return vqgpt_st_writer_add(c->w, c->names[c->n++], ST_F32, 1, shape, data);
}

static int check_finite_tensor(void *ctx, const char *name, float *data, size_t numel) {
  const char *path = ctx;
  if (vqgpt_all_finite(data, numel)) return 0;
  return vqgpt_error("%s: not saved: discriminator tensor '%s' holds a NaN or an infinity", path,
                     name);
}

// A checkpoint is never written with a NaN or an infinity in it: resuming it could only diverge.
static int check_finite_state(const vqgan_trainer *t, const char *path) {
  struct {
    const char *what;
    const float *x;
    size_t n;
  } parts[] = {{"VQGAN parameters", t->g->w, t->g->n_floats},
               {"generator Adam moments", t->g_m, t->g->n_floats},
               {"generator Adam moments", t->g_v, t->g->n_floats},
               {"discriminator Adam moments", t->d_m, t->n_d},
               {"discriminator Adam moments", t->d_v, t->n_d}};
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
    if (!vqgpt_all_finite(parts[i].x, parts[i].n))
      return vqgpt_error("%s: not saved: the %s hold a NaN or an infinity (training diverged)",
                         path, parts[i].what);
  return for_each_disc_tensor(t->d, check_finite_tensor, (void *)path);
}

int vqgpt_vqgan_trainer_save(const vqgan_trainer *t, const char *path, const char *train_state) {
  if (check_finite_state(t, path)) return -1;
  st_writer *w = vqgpt_st_writer_new();
  char(*names)[96] = calloc(DISC_MAX_MODULES * 4, sizeof *names);
  if (!w || !names) {
    vqgpt_st_writer_free(w);
    free(names);
    return vqgpt_error("%s: out of memory", path);
  }
  int64_t ng[1] = {(int64_t)t->g->n_floats}, nd[1] = {(int64_t)t->n_d};
  char disc_cfg[128], steps[64];
  const patchgan_config *dc = vqgpt_patchgan_get_config(t->d);
  snprintf(disc_cfg, sizeof disc_cfg, "{\"input_nc\": %d, \"ndf\": %d, \"n_layers\": %d}",
           dc->input_nc, dc->ndf, dc->n_layers);
  snprintf(steps, sizeof steps, "{\"g\": %ld, \"d\": %ld}", t->g_steps, t->d_steps);
  save_ctx ctx = {w, names, 0};
  int rc = vqgpt_vqgan_write_tensors(t->g, w) || vqgpt_st_writer_meta(w, "disc_config", disc_cfg) ||
           vqgpt_st_writer_meta(w, "adam_steps", steps) ||
           vqgpt_st_writer_meta(w, "train_state", train_state ? train_state : "{}") ||
           vqgpt_st_writer_add(w, "opt.g.m", ST_F32, 1, ng, t->g_m) ||
           vqgpt_st_writer_add(w, "opt.g.v", ST_F32, 1, ng, t->g_v) ||
           vqgpt_st_writer_add(w, "opt.d.m", ST_F32, 1, nd, t->d_m) ||
           vqgpt_st_writer_add(w, "opt.d.v", ST_F32, 1, nd, t->d_v) ||
           for_each_disc_tensor(t->d, add_disc_tensor, &ctx);
  if (!rc) rc = vqgpt_st_writer_save(w, path);
  vqgpt_st_writer_free(w);
  free(names);
  return rc ? -1 : 0;
}

typedef struct {
  const st_file *f;
} load_ctx;

static int read_disc_tensor(void *p, const char *name, float *data, size_t numel) {
  load_ctx *c = p;
  char full[96];
  snprintf(full, sizeof full, "loss.discriminator.%s", name);
  int64_t shape[1] = {(int64_t)numel};
  return vqgpt_st_read_weights(c->f, full, data, 1, shape);
}

// "\"ch\": 64 in the checkpoint, 32 in this run" for the first key whose value differs between
// two configs written by vqgpt_vqgan_config_json (same keys in the same order).
static const char *first_difference(const char *was, const char *now) {
  static _Thread_local char msg[256];
  size_t key = 0;  // the opening quote of the latest key (the configs hold no string values)
  bool in_string = false;
  for (size_t i = 0; was[i] && was[i] == now[i]; i++)
    if (was[i] == '"' && (in_string = !in_string)) key = i;
  // The differing value runs from the key's colon to the next ',' or '}' at bracket depth 0.
  const char *texts[2] = {was, now};
  int lens[2], starts[2];
  for (int k = 0; k < 2; k++) {
    const char *c = strchr(texts[k] + key, ':');
    starts[k] = c ? (int)(c - texts[k]) + 2 : (int)key;
    int depth = 0, j = starts[k];
    for (; texts[k][j] && (depth > 0 || (texts[k][j] != ',' && texts[k][j] != '}')); j++)
      depth += texts[k][j] == '[' ? 1 : texts[k][j] == ']' ? -1 : 0;
    lens[k] = j - starts[k];
  }
  const char *colon = strchr(was + key, ':');
  int key_len = colon ? (int)(colon - (was + key)) : 0;
  snprintf(msg, sizeof msg, "%.*s is %.*s in the checkpoint, %.*s in this run", key_len, was + key,
           lens[0], was + starts[0], lens[1], now + starts[1]);
  return msg;
}

char *vqgpt_vqgan_trainer_load(vqgan_trainer *t, const char *path) {
  st_file f;
  if (vqgpt_st_open(&f, path)) return NULL;
  char *state = NULL;
  vqgan_config cfg;
  const char *disc_cfg = vqgpt_st_meta(&f, "disc_config");
  const char *steps = vqgpt_st_meta(&f, "adam_steps");
  const char *ts = vqgpt_st_meta(&f, "train_state");
  patchgan_config dc;
  char want[1024], got[1024];
  int rc = vqgpt_st_check_format(&f, "taming-vqgan", "a VQGAN checkpoint") ||
           vqgpt_vqgan_config_parse(&cfg, vqgpt_st_meta(&f, "config"), path);
  if (!rc && (vqgpt_vqgan_config_json(&cfg, got, sizeof got) ||
              vqgpt_vqgan_config_json(&t->g->cfg, want, sizeof want) || strcmp(got, want) != 0))
    rc = vqgpt_error("%s: the checkpoint's VQGAN config differs from this run's: %s", path,
                     first_difference(got, want));
  if (!rc && (!disc_cfg || !steps || !ts))
    rc = vqgpt_error("%s: not a training checkpoint (no optimizer state)", path);
  if (!rc) rc = vqgpt_patchgan_config_parse(&dc, disc_cfg, path);
  const patchgan_config *have = vqgpt_patchgan_get_config(t->d);
  if (!rc &&
      (dc.input_nc != have->input_nc || dc.ndf != have->ndf || dc.n_layers != have->n_layers))
    rc = vqgpt_error(
        "%s: the checkpoint's discriminator (input_nc %d, ndf %d, n_layers %d) "
        "differs from this run's (input_nc %d, ndf %d, n_layers %d)",
        path, dc.input_nc, dc.ndf, dc.n_layers, have->input_nc, have->ndf, have->n_layers);
  if (!rc && sscanf(steps, "{\"g\": %ld, \"d\": %ld}", &t->g_steps, &t->d_steps) != 2)
    rc = vqgpt_error("%s: malformed adam_steps metadata", path);
  for (size_t i = 0; i < t->g->n_params && !rc; i++) {
    const vqgan_param *p = &t->g->params[i];
    rc = vqgpt_st_read_weights(&f, p->name, t->g->w + p->offset, p->ndim, p->shape);
  }
  int64_t ng[1] = {(int64_t)t->g->n_floats}, nd[1] = {(int64_t)t->n_d};
  load_ctx ctx = {&f};
  if (!rc)
    rc = vqgpt_st_read_weights(&f, "opt.g.m", t->g_m, 1, ng) ||
         vqgpt_st_read_weights(&f, "opt.g.v", t->g_v, 1, ng) ||
         vqgpt_st_read_weights(&f, "opt.d.m", t->d_m, 1, nd) ||
         vqgpt_st_read_weights(&f, "opt.d.v", t->d_v, 1, nd) ||
         for_each_disc_tensor(t->d, read_disc_tensor, &ctx) || vqgpt_st_check_all_used(&f, NULL);
  if (!rc && !(state = strdup(ts))) vqgpt_error("out of memory");
  vqgpt_st_close(&f);
  return state;
}
