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
  if (i <= w / 2)
    local = i;
  else if (n - i < w / 2)
    local = w - (n - i);
  else
    local = w / 2;
  int lowest = i - (n - w);  // the window may not start after n - w
  return local < lowest ? lowest : local;
}

static bool guided(const sampler_job *job) { return job->uncond && job->cfg_scale != 1.0f; }

int vqgpt_sampler_check(const gpt *m, const sampler_job *job) {
  const gpt_config *c = &m->cfg;
  int V = c->vocab_size;
  if (job->B < 1 || job->grid_h < 1 || job->grid_w < 1)
    return vqgpt_error("nothing to sample (%d samples of %dx%d)", job->B, job->grid_h, job->grid_w);
  if (job->lanes < 0) return vqgpt_error("%d lanes invalid", job->lanes);
  if (job->window_h < 1 || job->window_w < 1)
    return vqgpt_error("window %dx%d invalid", job->window_h, job->window_w);
  if (job->n_cond < 1 || job->n_cond > c->block_size)
    return vqgpt_error("%d condition tokens do not fit the GPT's block_size %d", job->n_cond,
                       c->block_size);
  int wh = vqgpt_sampler_window_extent(job->grid_h, job->window_h);
  int ww = vqgpt_sampler_window_extent(job->grid_w, job->window_w);
  long need = (long)job->n_cond + (long)wh * ww - 1;
  if (need > c->block_size)
    return vqgpt_error(
        "a %dx%d window after %d condition token%s needs %ld positions but the "
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

// A lane fills one grid row with its own cache; several lanes advance together, each ready
// position of each lane one row of the same batched forward (vqgpt_gpt_extend). The rule makes
// row i+1 position j depend only on row i up to column j + window_w/2 or so, so rows overlap
// like a wavefront about one window width apart, and the forward's matrix products take a few
// windows' prefixes at once instead of one.
typedef struct {
  gpt_kv kv;
  int row;  // the grid row it fills; -1 when free
  bool have_window;
  int r0, c0;  // the window its cache holds
} sampler_lane;

typedef struct {
  int seqs;  // per lane: B, or 2B under guidance (the unconditional twins after the B)
  int n_lanes;
  sampler_lane *lane;
  gpt_work work;
  gpt_part *parts;
  int *part_lane;   // lane of each part this step
  int32_t *tokens;  // per lane (seqs, block_size): the tokens of its part
  float *logits;    // (n_lanes * seqs, V)
  int *done;        // per grid row: positions filled (left to right)
  logits_scratch scratch;
} sampler_state;

// Lanes: enough for the rows that can overlap (one per window width across the grid, plus one
// starting), none more than the grid has rows.
#define SAMPLER_MAX_LANES 8

static int lane_count(const sampler_job *job, int ww) {
  int n = job->grid_w > ww ? job->grid_w / ww + 1 : 1;
  if (n > SAMPLER_MAX_LANES) n = SAMPLER_MAX_LANES;
  if (job->lanes > 0 && job->lanes < n) n = job->lanes;
  return n < job->grid_h ? n : job->grid_h;
}

static void state_free(sampler_state *s) {
  for (int k = 0; s->lane && k < s->n_lanes; k++) vqgpt_gpt_kv_free(&s->lane[k].kv);
  vqgpt_gpt_work_free(&s->work);
  vqgpt_logits_scratch_free(&s->scratch);
  free(s->lane);
  free(s->parts);
  free(s->part_lane);
  free(s->tokens);
  free(s->logits);
  free(s->done);
}

static int state_init(sampler_state *s, const gpt *m, const sampler_job *job, int ww) {
  memset(s, 0, sizeof *s);
  const gpt_config *c = &m->cfg;
  s->seqs = guided(job) ? 2 * job->B : job->B;
  s->n_lanes = lane_count(job, ww);
  size_t n = (size_t)s->n_lanes;
  s->lane = calloc(n, sizeof *s->lane);
  s->parts = calloc(n, sizeof *s->parts);
  s->part_lane = calloc(n, sizeof *s->part_lane);
  s->tokens = malloc(n * s->seqs * c->block_size * sizeof(int32_t));
  s->logits = malloc(n * s->seqs * c->vocab_size * sizeof(float));
  s->done = calloc((size_t)job->grid_h, sizeof *s->done);
  if (!s->lane || !s->parts || !s->part_lane || !s->tokens || !s->logits || !s->done ||
      vqgpt_logits_scratch_init(&s->scratch, c->vocab_size)) {
    state_free(s);
    return vqgpt_error("out of memory for sampling %d sequences", s->seqs);
  }
  for (int k = 0; k < s->n_lanes; k++) {
    s->lane[k].row = -1;
    if (vqgpt_gpt_kv_init(&s->lane[k].kv, m, s->seqs)) {
      state_free(s);
      return -1;
    }
  }
  return 0;
}

// The code at window position q of the window at (r0, c0), window width ww, for sequence `r`
// of a lane (a twin reads its sample's codes).
static int32_t window_token(const sampler_job *job, const int32_t *out, int r, int r0, int c0,
                            int ww, int q) {
  int b = r % job->B;
  size_t at = (size_t)(r0 + q / ww) * job->grid_w + (size_t)(c0 + q % ww);
  return out[(size_t)b * job->grid_h * job->grid_w + at];
}

// The lane's share of the next forward, for window position p of the window at (r0, c0): the
// few tokens its cache lacks if it holds this window, else the whole causal prefix (condition
// + window positions 0..p-1) from the start.
static void lane_part(sampler_lane *ln, int32_t *tokens, gpt_part *part, const sampler_job *job,
                      const int32_t *out, int seqs, int r0, int c0, int ww, int p) {
  int need = job->n_cond + p;
  gpt_kv *kv = &ln->kv;
  bool same = ln->have_window && r0 == ln->r0 && c0 == ln->c0;
  if (!job->no_kv_reuse && same && kv->T < need && need - kv->T <= SAMPLER_MAX_CATCHUP) {
    int count = need - kv->T;
    for (int r = 0; r < seqs; r++)
      for (int t = 0; t < count; t++)
        tokens[(size_t)r * count + t] =
            window_token(job, out, r, r0, c0, ww, kv->T - job->n_cond + t);
    *part = (gpt_part){kv, tokens, count, false};
    return;
  }
  for (int r = 0; r < seqs; r++) {
    int32_t *seq = tokens + (size_t)r * need;
    const int32_t *cond =
        (r < job->B ? job->cond : job->uncond) + (size_t)(r % job->B) * job->n_cond;
    memcpy(seq, cond, (size_t)job->n_cond * sizeof(int32_t));
    for (int q = 0; q < p; q++) seq[job->n_cond + q] = window_token(job, out, r, r0, c0, ww, q);
  }
  *part = (gpt_part){kv, tokens, need, true};
  ln->have_window = true;
  ln->r0 = r0;
  ln->c0 = c0;
}

// Draws the code of grid position `pos` for every sample from a lane's logits (seqs, V).
static void draw(sampler_state *s, const sampler_job *job, float *logits, int V, int pos,
                 int32_t *out) {
  size_t hw = (size_t)job->grid_h * job->grid_w;
  for (int b = 0; b < job->B; b++) {
    float *row = logits + (size_t)b * V;
    if (guided(job)) {
      const float *un = logits + (size_t)(job->B + b) * V;
      for (int v = 0; v < V; v++) row[v] = un[v] + job->cfg_scale * (row[v] - un[v]);
    }
    vqgpt_logits_limit(row, V, job->n_allowed);
    uint64_t stream = vqgpt_rng_hash(job->seed, ((uint64_t)b << 32) | (uint64_t)pos);
    out[(size_t)b * hw + pos] = vqgpt_logits_select(row, V, &job->sp, &stream, &s->scratch);
  }
}

// Whether position (i, j) may be drawn: every window position before it is filled. Rows above
// are at least as far along as the row below them, so row i-1 alone decides.
static bool position_ready(const sampler_state *s, int i, int c0, int ww, int W) {
  if (i == 0) return true;
  int right = c0 + ww < W ? c0 + ww : W;
  return s->done[i - 1] >= right;
}

// Gives free lanes the next rows that still have positions to fill (rows start in order).
static void assign_lanes(sampler_state *s, int H, int W, int *next_row) {
  for (int k = 0; k < s->n_lanes; k++) {
    while (*next_row < H && s->done[*next_row] == W) (*next_row)++;
    if (s->lane[k].row < 0 && *next_row < H) s->lane[k].row = (*next_row)++;
  }
}

int vqgpt_sampler_run(const gpt *m, const sampler_job *job, int32_t *out,
                      sampler_progress_fn progress, void *ctx) {
  if (vqgpt_sampler_check(m, job)) return -1;
  int H = job->grid_h, W = job->grid_w, V = m->cfg.vocab_size, Tm = m->cfg.block_size;
  int wh = vqgpt_sampler_window_extent(H, job->window_h),
      ww = vqgpt_sampler_window_extent(W, job->window_w);
  size_t hw = (size_t)H * W;
  for (int b = 0; b < job->B; b++)
    for (size_t k = 0; k < (size_t)job->keep; k++) out[b * hw + k] = job->init[b * hw + k];
  sampler_state s;
  if (state_init(&s, m, job, ww)) return -1;
  for (int i = 0; i < H; i++) {
    long kept = (long)job->keep - (long)i * W;
    s.done[i] = kept >= W ? W : kept > 0 ? (int)kept : 0;
  }
  int rc = 0, total = (int)hw - job->keep, filled = 0, next_row = 0;
  while (filled < total && !rc) {
    assign_lanes(&s, H, W, &next_row);
    int n_parts = 0;
    for (int k = 0; k < s.n_lanes; k++) {
      sampler_lane *ln = &s.lane[k];
      if (ln->row < 0) continue;
      int i = ln->row, j = s.done[i];
      int li = vqgpt_sampler_window_local(i, H, wh), lj = vqgpt_sampler_window_local(j, W, ww);
      if (!position_ready(&s, i, j - lj, ww, W)) continue;
      lane_part(ln, s.tokens + (size_t)k * s.seqs * Tm, &s.parts[n_parts], job, out, s.seqs, i - li,
                j - lj, ww, li * ww + lj);
      s.part_lane[n_parts++] = k;
    }
    // The lowest unfinished row has every row above it filled, so some lane is always ready.
    rc = n_parts ? vqgpt_gpt_extend(m, &s.work, s.parts, n_parts, s.logits)
                 : vqgpt_error("sampler: no position ready (internal error)");
    for (int q = 0; q < n_parts && !rc; q++) {
      sampler_lane *ln = &s.lane[s.part_lane[q]];
      int i = ln->row;
      draw(&s, job, s.logits + (size_t)q * s.seqs * V, V, i * W + s.done[i], out);
      if (++s.done[i] == W) ln->row = -1;
    }
    filled += n_parts;
    if (progress && !rc) progress(ctx, filled, total);
  }
  state_free(&s);
  return rc;
}
