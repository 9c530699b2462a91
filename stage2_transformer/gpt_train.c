#include "stage2_transformer/gpt_train.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/adamw.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/finite.h"
#include "core/rng.h"
#include "weights/json.h"
#include "weights/safetensors.h"

// Streams derived from the seed: the held-out split never depends on how far training went.
#define STREAM_SPLIT 1
#define STREAM_TRAIN 2

void vqgpt_gpt_train_options_default(gpt_train_options *o) {
  o->batch_size = 8;
  o->steps = 1000;
  o->lr = 3e-4f;
  o->min_lr = 3e-5f;
  o->warmup = 100;
  o->weight_decay = 0.01f;
  o->beta1 = 0.9f;
  o->beta2 = 0.95f;
  o->eps = 1e-8f;
  o->grad_clip = 1.0f;
  o->pkeep = 1.0f;
  o->cond_drop = 0.0f;
  o->val_fraction = 0.05f;
  o->seed = 0;
  o->data_settings = NULL;
  o->ranks = 1;
}

int vqgpt_gpt_train_options_check(const gpt_train_options *o) {
  if (o->batch_size < 1 || o->batch_size > 65536)
    return vqgpt_error("--batch must be in [1, 65536] (got %d)", o->batch_size);
  if (o->steps < 0) return vqgpt_error("--steps must be >= 0 (got %ld)", o->steps);
  if (!(o->lr > 0) || !isfinite(o->lr)) return vqgpt_error("--lr must be > 0 (got %g)", o->lr);
  if (!(o->min_lr >= 0) || o->min_lr > o->lr)
    return vqgpt_error("--min-lr must be in [0, lr] (got %g)", o->min_lr);
  if (o->warmup < 0) return vqgpt_error("--warmup must be >= 0 (got %ld)", o->warmup);
  if (!(o->weight_decay >= 0) || !isfinite(o->weight_decay))
    return vqgpt_error("--weight-decay must be >= 0 (got %g)", o->weight_decay);
  if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
    return vqgpt_error("AdamW betas must be in [0, 1)");
  if (!(o->eps > 0)) return vqgpt_error("AdamW eps must be > 0");
  if (!(o->grad_clip >= 0) || !isfinite(o->grad_clip))
    return vqgpt_error("--grad-clip must be >= 0 (got %g)", o->grad_clip);
  if (!(o->pkeep > 0 && o->pkeep <= 1))
    return vqgpt_error("--pkeep must be in (0, 1] (got %g)", o->pkeep);
  if (!(o->val_fraction >= 0 && o->val_fraction < 1))
    return vqgpt_error("--val-fraction must be in [0, 1) (got %g)", o->val_fraction);
  if (!(o->cond_drop >= 0 && o->cond_drop < 1))
    return vqgpt_error("--cond-drop must be in [0, 1) (got %g)", o->cond_drop);
  if (o->ranks < 1 || o->batch_size % o->ranks || (o->ranks > 1 && o->ranks != vqgpt_dist_size()))
    return vqgpt_error(
        "--batch %d cannot be split over %d ranks (of %d running): it must be a "
        "multiple of their number",
        o->batch_size, o->ranks, vqgpt_dist_size());
  return 0;
}

float vqgpt_gpt_train_lr(const gpt_train_options *o, long step) {
  if (step < o->warmup) return o->lr * (float)(step + 1) / (float)o->warmup;
  long decay = o->steps - o->warmup;
  if (decay <= 0) return o->lr;
  double progress = (double)(step - o->warmup) / (double)decay;
  if (progress > 1) progress = 1;
  return (float)(o->min_lr + 0.5 * (o->lr - o->min_lr) * (1.0 + cos(M_PI * progress)));
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

// The held-out split, a function of the seed and the sample count only.
static int make_split(gpt_trainer *tr) {
  int n = tr->data.n;
  int n_val = (int)floor((double)n * tr->opt.val_fraction + 0.5);
  if (tr->opt.val_fraction > 0 && n_val == 0 && n >= 2) n_val = 1;
  if (n_val > n - 1) n_val = n - 1;
  int32_t *perm = malloc((size_t)n * sizeof(int32_t));
  if (!perm) return vqgpt_error("out of memory");
  uint64_t s = vqgpt_rng_hash(tr->opt.seed, STREAM_SPLIT);
  vqgpt_rng_permutation(&s, perm, (size_t)n);
  tr->n_val = n_val;
  tr->n_train = n - n_val;
  memcpy(tr->val_ids, perm, (size_t)n_val * sizeof(int32_t));
  memcpy(tr->train_ids, perm + n_val, (size_t)tr->n_train * sizeof(int32_t));
  qsort(tr->val_ids, (size_t)n_val, sizeof(int32_t), cmp_i32);
  qsort(tr->train_ids, (size_t)tr->n_train, sizeof(int32_t), cmp_i32);
  free(perm);
  return 0;
}

static void shuffle_epoch(gpt_trainer *tr) {
  vqgpt_rng_permutation(&tr->rng, tr->order, (size_t)tr->n_train);
  for (int i = 0; i < tr->n_train; i++) tr->order[i] = tr->train_ids[tr->order[i]];
  tr->cursor = 0;
}

static int alloc_batch(gpt_trainer *tr) {
  size_t T = (size_t)tr->T;
  free(tr->idx);
  free(tr->tgt);
  tr->idx = malloc((size_t)tr->opt.batch_size * T * sizeof(int32_t));
  tr->tgt = malloc((size_t)tr->opt.batch_size * T * sizeof(int32_t));
  if (!tr->idx || !tr->tgt) return vqgpt_error("out of memory");
  return 0;
}

int vqgpt_gpt_trainer_init(gpt_trainer *tr, gpt *model, const gpt_dataset *data,
                           const gpt_train_options *opt) {
  memset(tr, 0, sizeof *tr);
  if (vqgpt_gpt_train_options_check(opt)) return -1;
  const gpt_config *c = &model->cfg;
  if (data->n < 1 || data->h < 1 || data->w < 1) return vqgpt_error("no training data");
  size_t T = (size_t)data->h * data->w, n_cond = (size_t)vqgpt_gpt_n_cond(c);
  if (n_cond + T - 1 > (size_t)c->block_size)
    return vqgpt_error("a %dx%d code grid needs %zu positions but the GPT's block_size is %d",
                       data->h, data->w, n_cond + T - 1, c->block_size);
  if (opt->cond_drop > 0 &&
      !(c->cond == GPT_COND_TEXT || (c->cond == GPT_COND_CLASS && c->null_class > 0)))
    return vqgpt_error("condition dropout needs a text model or a class model with a null class");
  for (size_t i = 0; i < (size_t)data->n * T; i++)
    if (data->codes[i] < 0 || data->codes[i] >= c->n_codes)
      return vqgpt_error("code %d not in the GPT's code range [0, %d)", data->codes[i], c->n_codes);
  if (c->cond == GPT_COND_CLASS) {
    if (!data->labels) return vqgpt_error("a class-conditional GPT needs class labels");
    for (int i = 0; i < data->n; i++)
      if (data->labels[i] < 0 || data->labels[i] >= c->n_classes)
        return vqgpt_error("class label %d not in [0, %d)", data->labels[i], c->n_classes);
  }
  if (c->cond == GPT_COND_TEXT) {
    if (!data->prompts) return vqgpt_error("a text-conditional GPT needs prompts");
    for (size_t i = 0; i < (size_t)data->n * n_cond; i++)
      if (data->prompts[i] < c->n_codes || data->prompts[i] > vqgpt_gpt_text_pad(c))
        return vqgpt_error("prompt token %d not in the text range [%d, %d]", data->prompts[i],
                           c->n_codes, vqgpt_gpt_text_pad(c));
  }
  tr->model = model;
  tr->opt = *opt;
  tr->rows = opt->batch_size / opt->ranks;
  tr->row0 = (opt->ranks > 1 ? vqgpt_dist_rank() : 0) * tr->rows;
  tr->data = *data;
  tr->T = (int)(n_cond + T - 1);
  tr->m = calloc(model->n_params, sizeof(float));
  tr->v = calloc(model->n_params, sizeof(float));
  tr->val_ids = malloc((size_t)data->n * sizeof(int32_t));
  tr->train_ids = malloc((size_t)data->n * sizeof(int32_t));
  tr->order = malloc((size_t)data->n * sizeof(int32_t));
  if (!tr->m || !tr->v || !tr->val_ids || !tr->train_ids || !tr->order) {
    vqgpt_gpt_trainer_free(tr);
    return vqgpt_error("out of memory for the optimizer state");
  }
  if (make_split(tr) || alloc_batch(tr) || vqgpt_gpt_alloc_grads(model) ||
      vqgpt_gpt_build(model, tr->rows, tr->T)) {
    vqgpt_gpt_trainer_free(tr);
    return -1;
  }
  tr->rng = vqgpt_rng_hash(opt->seed, STREAM_TRAIN);
  shuffle_epoch(tr);
  return 0;
}

void vqgpt_gpt_trainer_free(gpt_trainer *tr) {
  free(tr->m);
  free(tr->v);
  free(tr->val_ids);
  free(tr->train_ids);
  free(tr->order);
  free(tr->idx);
  free(tr->tgt);
  memset(tr, 0, sizeof *tr);
}

// Writes sample `s`'s sequence: condition tokens (the null condition if `null`), the codes
// but the last as inputs; targets are the codes, -1 (ignored) under the condition's prefix.
static void fill_sequence(const gpt_trainer *tr, int s, bool null, int32_t *in, int32_t *tg) {
  const gpt_config *c = &tr->model->cfg;
  int nc = vqgpt_gpt_n_cond(c), hw = tr->data.h * tr->data.w;
  if (c->cond == GPT_COND_TEXT) {
    for (int k = 0; k < nc; k++)
      in[k] = null ? vqgpt_gpt_text_pad(c) : tr->data.prompts[(size_t)s * nc + k];
  } else if (c->cond == GPT_COND_CLASS) {
    in[0] = null ? c->null_class : tr->data.labels[s];
  } else {
    in[0] = c->sos_token;
  }
  const int32_t *codes = tr->data.codes + (size_t)s * hw;  // (h*w)
  memcpy(in + nc, codes, (size_t)(hw - 1) * sizeof(int32_t));
  for (int k = 0; k < nc - 1; k++) tg[k] = -1;
  memcpy(tg + nc - 1, codes, (size_t)hw * sizeof(int32_t));
}

// The gradient and loss of the whole batch from each rank's (means over its valid targets):
// each rank's share weighted by its count of targets, summed over the ranks.
static void average_over_ranks(gpt *m) {
  double loss_count[2] = {(double)m->loss * m->n_valid, (double)m->n_valid};
  vqgpt_dist_allreduce_sum_f64(loss_count, 2);
  float k = loss_count[1] > 0 ? (float)(m->n_valid / loss_count[1]) : 0.0f;
  for (size_t i = 0; i < m->n_params; i++) m->grads[i] *= k;
  vqgpt_dist_allreduce_sum_f32(m->grads, m->n_params);
  m->loss = loss_count[1] > 0 ? (float)(loss_count[0] / loss_count[1]) : 0.0f;
}

int vqgpt_gpt_trainer_step(gpt_trainer *tr, gpt_step_stats *stats) {
  gpt *m = tr->model;
  int B = tr->opt.batch_size, T = tr->T, V = m->cfg.vocab_size, nc = vqgpt_gpt_n_cond(&m->cfg);
  float pkeep = tr->opt.pkeep;
  for (int b = 0; b < B; b++) {
    if (tr->cursor >= tr->n_train) {
      tr->epoch++;
      shuffle_epoch(tr);
    }
    int s = tr->order[tr->cursor++];
    int32_t *in = tr->idx + (size_t)b * T, *tg = tr->tgt + (size_t)b * T;
    // Drawn only when dropout is on, so that runs without it keep their random streams.
    bool null = tr->opt.cond_drop > 0 && vqgpt_rng_uniform(&tr->rng) < tr->opt.cond_drop;
    fill_sequence(tr, s, null, in, tg);
    // Inputs only are corrupted: a random token of the whole vocabulary, as the reference's
    // randint_like(z_indices, vocab_size); targets stay the true codes.
    for (int t = nc; t < T; t++)
      if (pkeep < 1.0f && vqgpt_rng_uniform(&tr->rng) >= pkeep)
        in[t] = (int32_t)vqgpt_rng_below(&tr->rng, V);
  }
  uint64_t drop_seed = vqgpt_rng_next(&tr->rng);
  vqgpt_gpt_zero_grad(m);
  // This rank's rows, with the dropout masks of those rows of the whole batch.
  size_t first = (size_t)tr->row0 * T;
  if (vqgpt_gpt_forward(m, tr->idx + first, tr->tgt + first, tr->rows, T, true, drop_seed,
                        tr->row0) ||
      vqgpt_gpt_backward(m))
    return -1;
  if (tr->opt.ranks > 1) average_over_ranks(m);
  // A non-finite loss, gradient or updated parameter stops training at the step it appears
  // in (the caller then saves nothing: vqgpt_gpt_trainer_save refuses non-finite state anyway).
  if (!isfinite(m->loss))
    return vqgpt_error("step %ld: training diverged: the loss is %g", tr->step + 1, m->loss);
  double norm = vqgpt_adamw_global_norm(m->grads, m->n_params);
  if (!isfinite(norm))
    return vqgpt_error("step %ld: training diverged: the gradient norm is %g", tr->step + 1, norm);
  vqgpt_adamw_clip(m->grads, m->n_params, norm, tr->opt.grad_clip);
  float lr = vqgpt_gpt_train_lr(&tr->opt, tr->step);
  bool finite = true;
  for (size_t i = 0; i < m->n_tensors; i++) {
    const gpt_tensor_info *t = &m->tensors[i];
    finite &= vqgpt_adamw_update(m->params + t->offset, m->grads + t->offset, tr->m + t->offset,
                                 tr->v + t->offset, t->numel, lr, tr->opt.beta1, tr->opt.beta2,
                                 tr->opt.eps, t->decay ? tr->opt.weight_decay : 0.0f, tr->step + 1);
  }
  if (!finite)
    return vqgpt_error(
        "step %ld: training diverged: the update made a parameter non-finite "
        "(learning rate %g too high?)",
        tr->step + 1, lr);
  tr->step++;
  if (stats) {
    stats->loss = m->loss;
    stats->lr = lr;
    stats->grad_norm = (float)norm;
  }
  return 0;
}

int vqgpt_gpt_trainer_validate(gpt_trainer *tr, double *loss) {
  gpt *m = tr->model;
  // The activations' batch; several ranks take turns over the chunks.
  int B = tr->rows, T = tr->T, ranks = tr->opt.ranks, me = ranks > 1 ? vqgpt_dist_rank() : 0;
  if (tr->n_val == 0) {
    *loss = NAN;
    return 0;
  }
  double total = 0;
  long count = 0;
  // Full batches keep the activation shape; the last one is padded with ignored rows.
  for (int i0 = 0, chunk = 0; i0 < tr->n_val; i0 += B, chunk++) {
    if (chunk % ranks != me) continue;
    for (int b = 0; b < B; b++) {
      int32_t *in = tr->idx + (size_t)b * T, *tg = tr->tgt + (size_t)b * T;
      if (i0 + b >= tr->n_val) {
        memset(in, 0, (size_t)T * sizeof(int32_t));
        for (int t = 0; t < T; t++) tg[t] = -1;
        continue;
      }
      fill_sequence(tr, tr->val_ids[i0 + b], false, in, tg);
    }
    if (vqgpt_gpt_forward(m, tr->idx, tr->tgt, B, T, false, 0, 0)) return -1;
    total += (double)m->loss * m->n_valid;
    count += m->n_valid;
  }
  if (ranks > 1) {
    double total_count[2] = {total, (double)count};
    vqgpt_dist_allreduce_sum_f64(total_count, 2);
    total = total_count[0];
    count = (long)total_count[1];
  }
  *loss = total / (double)count;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

static char *state_json(const gpt_trainer *tr) {
  const gpt_train_options *o = &tr->opt;
  const char *data = o->data_settings ? o->data_settings : "";
  size_t n = 2048 + strlen(data);
  char *s = malloc(n);
  if (!s) return NULL;
  snprintf(s, n,
           "{\"step\": %ld, \"rng\": \"%" PRIu64
           "\", \"epoch\": %ld, \"cursor\": %d, "
           "\"n_samples\": %d, \"h\": %d, \"w\": %d, \"n_val\": %d, \"options\": {"
           "\"batch_size\": %d, \"steps\": %ld, \"lr\": %.9g, \"min_lr\": %.9g, \"warmup\": %ld, "
           "\"weight_decay\": %.9g, \"beta1\": %.9g, \"beta2\": %.9g, \"eps\": %.9g, "
           "\"grad_clip\": %.9g, \"pkeep\": %.9g, \"cond_drop\": %.9g, \"val_fraction\": %.9g, "
           "\"seed\": \"%" PRIu64 "\"}, \"data\": \"%s\"}",
           tr->step, tr->rng, tr->epoch, tr->cursor, tr->data.n, tr->data.h, tr->data.w, tr->n_val,
           o->batch_size, o->steps, o->lr, o->min_lr, o->warmup, o->weight_decay, o->beta1,
           o->beta2, o->eps, o->grad_clip, o->pkeep, o->cond_drop, o->val_fraction, o->seed, data);
  return s;
}

int vqgpt_gpt_trainer_save(const gpt_trainer *tr, const char *path) {
  const gpt *m = tr->model;
  // A checkpoint is never written with a NaN or an infinity in it.
  const float *blocks[3] = {m->params, tr->m, tr->v};
  const char *what[3] = {"parameters", "AdamW moments", "AdamW moments"};
  for (int i = 0; i < 3; i++)
    if (!vqgpt_all_finite(blocks[i], m->n_params))
      return vqgpt_error(
          "%s: not saved: the GPT's %s hold a NaN or an infinity (training "
          "diverged)",
          path, what[i]);
  st_writer *w = vqgpt_st_writer_new();
  if (!w) return vqgpt_error("out of memory");
  char **names[3] = {NULL, NULL, NULL};
  char *cfg = vqgpt_gpt_config_to_json(&m->cfg), *state = state_json(tr);
  int64_t order_shape[1] = {tr->n_train};
  int rc = -1;
  if (!cfg || !state) {
    vqgpt_error("out of memory");
    goto done;
  }
  if (vqgpt_st_writer_meta(w, "format", "taming-gpt") || vqgpt_st_writer_meta(w, "config", cfg) ||
      vqgpt_st_writer_meta(w, "train_state", state) || vqgpt_gpt_card_write(&m->card, w) ||
      vqgpt_gpt_writer_add_block(m, w, "", m->params, &names[0]) ||
      vqgpt_gpt_writer_add_block(m, w, "opt.m.", tr->m, &names[1]) ||
      vqgpt_gpt_writer_add_block(m, w, "opt.v.", tr->v, &names[2]) ||
      vqgpt_st_writer_add(w, "train.order", ST_I32, 1, order_shape, tr->order) ||
      vqgpt_st_writer_save(w, path))
    goto done;
  rc = 0;
done:
  vqgpt_st_writer_free(w);
  for (int i = 0; i < 3; i++) vqgpt_gpt_free_names(m, names[i]);
  free(cfg);
  free(state);
  return rc;
}

static bool get_u64_string(const json_value *o, const char *key, uint64_t *out) {
  const char *s = vqgpt_json_get_string(o, key);
  if (!s || !*s) return false;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (*end) return false;
  *out = v;
  return true;
}

static bool get_float(const json_value *o, const char *key, float *out) {
  double d;
  if (!vqgpt_json_get_number(o, key, &d)) return false;
  *out = (float)d;
  return true;
}

static bool get_long(const json_value *o, const char *key, long *out) {
  int64_t v;
  if (!vqgpt_json_get_int(o, key, &v)) return false;
  *out = (long)v;
  return true;
}

static bool get_int(const json_value *o, const char *key, int *out) {
  int64_t v;
  if (!vqgpt_json_get_int(o, key, &v) || v < INT32_MIN || v > INT32_MAX) return false;
  *out = (int)v;
  return true;
}

// A resumed run continues the recorded one: every option but the step count must be the one
// it was trained with (a changed batch or learning rate would silently change the run).
static int check_same_options(const char *path, const gpt_train_options *was,
                              const gpt_train_options *now) {
  struct {
    const char *flag;
    double was, now;
  } f[] = {{"--batch", was->batch_size, now->batch_size},
           {"--lr", was->lr, now->lr},
           {"--min-lr", was->min_lr, now->min_lr},
           {"--warmup", (double)was->warmup, (double)now->warmup},
           {"--weight-decay", was->weight_decay, now->weight_decay},
           {"AdamW beta1", was->beta1, now->beta1},
           {"AdamW beta2", was->beta2, now->beta2},
           {"AdamW eps", was->eps, now->eps},
           {"--grad-clip", was->grad_clip, now->grad_clip},
           {"--pkeep", was->pkeep, now->pkeep},
           {"--val-fraction", was->val_fraction, now->val_fraction}};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    if (f[i].was != f[i].now)
      return vqgpt_error(
          "%s: %s is %.7g for this run but the checkpoint was trained with %.7g "
          "(resume with the same settings; only --steps may change)",
          path, f[i].flag, f[i].now, f[i].was);
  if (was->seed != now->seed)
    return vqgpt_error("%s: --seed is %" PRIu64
                       " for this run but the checkpoint was trained "
                       "with %" PRIu64 " (resume with the same settings; only --steps may change)",
                       path, now->seed, was->seed);
  return 0;
}

int vqgpt_gpt_trainer_resume(gpt_trainer *tr, const char *path) {
  gpt *m = tr->model;
  st_file f;
  if (vqgpt_st_open(&f, path)) return -1;
  json_value *root = NULL;
  int rc = -1;
  const char *state = vqgpt_st_meta(&f, "train_state"), *config = vqgpt_st_meta(&f, "config");
  gpt_config cfg;
  if (vqgpt_st_check_format(&f, "taming-gpt", "a GPT checkpoint")) goto done;
  if (!state) {
    vqgpt_error("%s: not a training checkpoint (no train_state)", path);
    goto done;
  }
  if (!config || vqgpt_gpt_config_parse(&cfg, config, path)) {
    if (!config) vqgpt_error("%s: no config", path);
    goto done;
  }
  const gpt_config *c = &m->cfg;
  if (cfg.vocab_size != c->vocab_size || cfg.block_size != c->block_size ||
      cfg.n_layer != c->n_layer || cfg.n_head != c->n_head || cfg.n_embd != c->n_embd ||
      cfg.cond != c->cond) {
    vqgpt_error("%s: checkpoint model config differs from the model being trained", path);
    goto done;
  }
  root = vqgpt_json_parse(state, strlen(state));
  if (!root) {
    vqgpt_error("%s: train_state is not valid JSON", path);
    goto done;
  }
  const json_value *o = vqgpt_json_get(root, "options");
  gpt_train_options opt = tr->opt;
  long step, epoch;
  int cursor, n_samples, h, w, n_val;
  uint64_t rng;
  if (!o || !get_long(root, "step", &step) || !get_u64_string(root, "rng", &rng) ||
      !get_long(root, "epoch", &epoch) || !get_int(root, "cursor", &cursor) ||
      !get_int(root, "n_samples", &n_samples) || !get_int(root, "h", &h) ||
      !get_int(root, "w", &w) || !get_int(root, "n_val", &n_val) ||
      !get_int(o, "batch_size", &opt.batch_size) || !get_float(o, "lr", &opt.lr) ||
      !get_float(o, "min_lr", &opt.min_lr) || !get_long(o, "warmup", &opt.warmup) ||
      !get_float(o, "weight_decay", &opt.weight_decay) || !get_float(o, "beta1", &opt.beta1) ||
      !get_float(o, "beta2", &opt.beta2) || !get_float(o, "eps", &opt.eps) ||
      !get_float(o, "grad_clip", &opt.grad_clip) || !get_float(o, "pkeep", &opt.pkeep) ||
      !get_float(o, "val_fraction", &opt.val_fraction) || !get_u64_string(o, "seed", &opt.seed)) {
    vqgpt_error("%s: train_state is incomplete", path);
    goto done;
  }
  opt.cond_drop = 0;  // absent in checkpoints from before condition dropout
  if (vqgpt_json_get(o, "cond_drop") && !get_float(o, "cond_drop", &opt.cond_drop)) {
    vqgpt_error("%s: train_state cond_drop is not a number", path);
    goto done;
  }
  if (vqgpt_gpt_train_options_check(&opt) || check_same_options(path, &opt, &tr->opt)) goto done;
  const char *data_was = vqgpt_json_get_string(root, "data");
  // "" or absent: made by a caller that did not say, or by an older vqgpt; not checked.
  if (data_was && *data_was && tr->opt.data_settings && strcmp(data_was, tr->opt.data_settings)) {
    vqgpt_error(
        "%s: the checkpoint's codes were made with %s, this run's with %s (resume with the "
        "same settings; only --steps may change)",
        path, data_was, tr->opt.data_settings);
    goto done;
  }
  if (n_samples != tr->data.n || h != tr->data.h || w != tr->data.w) {
    vqgpt_error("%s: checkpoint was trained on %d grids of %dx%d, the data has %d of %dx%d", path,
                n_samples, h, w, tr->data.n, tr->data.h, tr->data.w);
    goto done;
  }
  if (step < 0 || epoch < 0) {
    vqgpt_error("%s: train_state has a negative step or epoch", path);
    goto done;
  }
  bool new_batch = opt.batch_size != tr->opt.batch_size;
  tr->opt = opt;
  if (make_split(tr)) goto done;
  if (tr->n_val != n_val || cursor < 0 || cursor > tr->n_train) {
    vqgpt_error("%s: train_state does not match the data split", path);
    goto done;
  }
  int64_t order_shape[1] = {tr->n_train};
  if (vqgpt_st_read_i32(&f, "train.order", tr->order, 1, order_shape)) goto done;
  // The stored order must be a permutation of this split's training samples.
  int32_t *check = malloc((size_t)tr->n_train * sizeof(int32_t));
  if (!check) {
    vqgpt_error("out of memory");
    goto done;
  }
  memcpy(check, tr->order, (size_t)tr->n_train * sizeof(int32_t));
  qsort(check, (size_t)tr->n_train, sizeof(int32_t), cmp_i32);
  bool same = memcmp(check, tr->train_ids, (size_t)tr->n_train * sizeof(int32_t)) == 0;
  free(check);
  if (!same) {
    vqgpt_error("%s: train.order does not match the data split", path);
    goto done;
  }
  static const char *const mask_buffers[] = {"blocks.*.attn.mask", "tokenizer", NULL};
  if (vqgpt_gpt_read_block(m, &f, "", m->params) || vqgpt_gpt_read_block(m, &f, "opt.m.", tr->m) ||
      vqgpt_gpt_read_block(m, &f, "opt.v.", tr->v) || vqgpt_st_check_all_used(&f, mask_buffers))
    goto done;
  if (new_batch) {
    tr->rows = opt.batch_size / opt.ranks;
    tr->row0 = (opt.ranks > 1 ? vqgpt_dist_rank() : 0) * tr->rows;
    if (alloc_batch(tr) || vqgpt_gpt_build(m, tr->rows, tr->T)) goto done;
  }
  tr->step = step;
  tr->rng = rng;
  tr->epoch = epoch;
  tr->cursor = cursor;
  rc = 0;
done:
  vqgpt_json_free(root);
  vqgpt_st_close(&f);
  return rc;
}
