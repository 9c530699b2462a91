#include "sampling/sampler.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"

// While the window stays put, up to this many known tokens are appended one incremental step
// at a time; a longer gap is cheaper as one batched prefill (a step reads every weight once,
// for a single row each).
#define SAMPLER_MAX_CATCHUP 4

void vqgpt_sampler_job_default(sampler_job *job) {
  memset(job, 0, sizeof *job);
  job->cfg_scale = 1.0f;
  vqgpt_sampling_params_default(&job->sp);
}

void vqgpt_sampler_job_sequence(sampler_job *job, const gpt *m, int B, const int32_t *cond,
                          int n_tokens) {
  vqgpt_sampler_job_default(job);
  job->B = B;
  job->n_cond = 1;
  job->cond = cond;
  job->grid_h = job->window_h = 1;
  job->grid_w = job->window_w = n_tokens;
  job->n_allowed = m->cfg.vocab_size;
}

int vqgpt_sampler_window_extent(int grid, int trained) { return grid < trained ? grid : trained; }

int vqgpt_sampler_window_local(int i, int n, int w) {
  int local;
  if (i <= w / 2) local = i;
  else if (n - i < w / 2) local = w - (n - i);
  else local = w / 2;
  int lowest = i - (n - w);  // the window may not start after n - w
  return local < lowest ? lowest : local;
}

static bool guided(const sampler_job *job) { return job->uncond && job->cfg_scale != 1.0f; }

int vqgpt_sampler_check(const gpt *m, const sampler_job *job) {
  const gpt_config *c = &m->cfg;
  int V = c->vocab_size;
  if (job->B < 1 || job->grid_h < 1 || job->grid_w < 1)
    return vqgpt_error("nothing to sample (%d samples of %dx%d)", job->B, job->grid_h, job->grid_w);
  if (job->window_h < 1 || job->window_w < 1)
    return vqgpt_error("window %dx%d invalid", job->window_h, job->window_w);
  if (job->n_cond < 1 || job->n_cond > c->block_size)
    return vqgpt_error("%d condition tokens do not fit the GPT's block_size %d", job->n_cond,
                       c->block_size);
  int wh = vqgpt_sampler_window_extent(job->grid_h, job->window_h);
  int ww = vqgpt_sampler_window_extent(job->grid_w, job->window_w);
  long need = (long)job->n_cond + (long)wh * ww - 1;
  if (need > c->block_size)
    return vqgpt_error("a %dx%d window after %d condition token%s needs %ld positions but the "
                       "GPT's block_size is %d",
                       wh, ww, job->n_cond, job->n_cond > 1 ? "s" : "", need, c->block_size);
  if (job->n_allowed < 1 || job->n_allowed > V)
    return vqgpt_error("allowed token range %d not in [1, %d]", job->n_allowed, V);
  if (vqgpt_sampling_params_check(&job->sp, V)) return -1;
  if (!(job->cfg_scale == job->cfg_scale) || job->cfg_scale < -1e4f || job->cfg_scale > 1e4f)
    return vqgpt_error("guidance scale %g out of range", job->cfg_scale);
  size_t n_tok = (size_t)job->B * job->n_cond;
  for (size_t k = 0; k < n_tok; k++) {
    if (job->cond[k] < 0 || job->cond[k] >= V)
      return vqgpt_error("condition token %d not in [0, %d)", job->cond[k], V);
    if (job->uncond && (job->uncond[k] < 0 || job->uncond[k] >= V))
      return vqgpt_error("null-condition token %d not in [0, %d)", job->uncond[k], V);
  }
  long hw = (long)job->grid_h * job->grid_w;
  if (job->keep < 0 || job->keep > hw)
    return vqgpt_error("keeping %d positions of a %dx%d grid (%ld positions)", job->keep,
                       job->grid_h, job->grid_w, hw);
  if (job->keep > 0 && !job->init) return vqgpt_error("positions to keep but no initial codes");
  for (int b = 0; b < job->B && job->keep > 0; b++)
    for (int k = 0; k < job->keep; k++) {
      int32_t t = job->init[(size_t)b * hw + k];
      if (t < 0 || t >= job->n_allowed)
        return vqgpt_error("initial code %d (sample %d, position %d) not in [0, %d)", t, b, k,
                           job->n_allowed);
    }
  return 0;
}

typedef struct {
  gpt_kv kv;
  int rows;         // B, or 2B under guidance (the unconditional twins after the B samples)
  int32_t *seq;     // (rows, block_size) prefill input
  int32_t *tokens;  // (rows) incremental-step input
  float *logits;    // (rows, V)
  logits_scratch scratch;
  bool have_window;
  int r0, c0;       // the window the cache holds
} sampler_state;

static void state_free(sampler_state *s) {
  vqgpt_gpt_kv_free(&s->kv);
  vqgpt_logits_scratch_free(&s->scratch);
  free(s->seq);
  free(s->tokens);
  free(s->logits);
}

static int state_init(sampler_state *s, const gpt *m, const sampler_job *job) {
  memset(s, 0, sizeof *s);
  const gpt_config *c = &m->cfg;
  s->rows = guided(job) ? 2 * job->B : job->B;
  if (vqgpt_gpt_kv_init(&s->kv, m, s->rows)) return -1;
  s->seq = malloc((size_t)s->rows * c->block_size * sizeof(int32_t));
  s->tokens = malloc((size_t)s->rows * sizeof(int32_t));
  s->logits = malloc((size_t)s->rows * c->vocab_size * sizeof(float));
  if (!s->seq || !s->tokens || !s->logits || vqgpt_logits_scratch_init(&s->scratch, c->vocab_size)) {
    state_free(s);
    return vqgpt_error("out of memory for sampling %d sequences", s->rows);
  }
  return 0;
}

// The code at window position q of the window at (r0, c0), window width ww, for row `r` of the
// batch (a twin reads its sample's codes).
static int32_t window_token(const sampler_job *job, const int32_t *out, int r, int r0, int c0,
                            int ww, int q) {
  int b = r % job->B;
  size_t at = (size_t)(r0 + q / ww) * job->grid_w + (size_t)(c0 + q % ww);
  return out[(size_t)b * job->grid_h * job->grid_w + at];
}

// Leaves in s->logits the next-token logits for window position p of the window at (r0, c0):
// appends the few missing tokens to the cache if it holds this window, else recomputes the
// causal prefix (condition + window positions 0..p-1) in one batched forward.
static int window_logits(const gpt *m, sampler_state *s, const sampler_job *job,
                         const int32_t *out, int r0, int c0, int ww, int p) {
  int need = job->n_cond + p;
  gpt_kv *kv = &s->kv;
  bool same = s->have_window && r0 == s->r0 && c0 == s->c0;
  if (!job->no_kv_reuse && same && kv->T < need && need - kv->T <= SAMPLER_MAX_CATCHUP) {
    while (kv->T < need) {
      int q = kv->T - job->n_cond;
      for (int r = 0; r < s->rows; r++) s->tokens[r] = window_token(job, out, r, r0, c0, ww, q);
      if (vqgpt_gpt_step(m, kv, s->tokens, s->logits)) return -1;
    }
    return 0;
  }
  for (int r = 0; r < s->rows; r++) {
    int32_t *seq = s->seq + (size_t)r * need;
    const int32_t *cond = (r < job->B ? job->cond : job->uncond) + (size_t)(r % job->B) * job->n_cond;
    memcpy(seq, cond, (size_t)job->n_cond * sizeof(int32_t));
    for (int q = 0; q < p; q++) seq[job->n_cond + q] = window_token(job, out, r, r0, c0, ww, q);
  }
  if (vqgpt_gpt_prefill(m, kv, s->seq, need, s->logits)) return -1;
  s->have_window = true;
  s->r0 = r0;
  s->c0 = c0;
  return 0;
}

// Draws the code of grid position `pos` for every sample from s->logits.
static void draw(sampler_state *s, const sampler_job *job, int V, int pos, int32_t *out) {
  size_t hw = (size_t)job->grid_h * job->grid_w;
  for (int b = 0; b < job->B; b++) {
    float *row = s->logits + (size_t)b * V;
    if (guided(job)) {
      const float *un = s->logits + (size_t)(job->B + b) * V;
      for (int v = 0; v < V; v++) row[v] = un[v] + job->cfg_scale * (row[v] - un[v]);
    }
    vqgpt_logits_limit(row, V, job->n_allowed);
    uint64_t stream = vqgpt_rng_hash(job->seed, ((uint64_t)b << 32) | (uint64_t)pos);
    out[(size_t)b * hw + pos] = vqgpt_logits_select(row, V, &job->sp, &stream, &s->scratch);
  }
}

int vqgpt_sampler_run(const gpt *m, const sampler_job *job, int32_t *out, sampler_progress_fn progress,
                void *ctx) {
  if (vqgpt_sampler_check(m, job)) return -1;
  int H = job->grid_h, W = job->grid_w, V = m->cfg.vocab_size;
  int wh = vqgpt_sampler_window_extent(H, job->window_h), ww = vqgpt_sampler_window_extent(W, job->window_w);
  size_t hw = (size_t)H * W;
  for (int b = 0; b < job->B; b++)
    for (size_t k = 0; k < (size_t)job->keep; k++) out[b * hw + k] = job->init[b * hw + k];
  sampler_state s;
  if (state_init(&s, m, job)) return -1;
  int rc = 0, total = (int)hw - job->keep;
  for (int pos = job->keep; pos < (int)hw && !rc; pos++) {
    int i = pos / W, j = pos % W;
    int li = vqgpt_sampler_window_local(i, H, wh), lj = vqgpt_sampler_window_local(j, W, ww);
    rc = window_logits(m, &s, job, out, i - li, j - lj, ww, li * ww + lj);
    if (rc) break;
    draw(&s, job, V, pos, out);
    if (progress) progress(ctx, pos + 1 - job->keep, total);
  }
  state_free(&s);
  return rc;
}
