// Sliding-window sampling: greedy parity with the reference rule (fixtures window_tiny*,
// including image completion), the rule at the borders, K/V reuse against recomputation,
// batches against one-by-one, and the errors.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/blas.h"
#include "core/error.h"
#include "sampling/sampler.h"
#include "stage2_transformer/gpt.h"
#include "test_util.h"

typedef struct {
  int n, h, w, keep;
} window_case;

// From the fixture's metadata "cases".
static const window_case cases[4] = {{2, 9, 13, 0}, {1, 4, 6, 0}, {1, 7, 8, 0}, {1, 9, 13, 29}};

static void job_for(sampler_job *job, const gpt *m, const window_case *wc, const int32_t *classes,
                    const int32_t *given) {
  vqgpt_sampler_job_default(job);
  job->B = wc->n;
  job->n_cond = 1;
  job->cond = classes;
  job->grid_h = wc->h;
  job->grid_w = wc->w;
  job->window_h = m->cfg.grid_h;
  job->window_w = m->cfg.grid_w;
  job->n_allowed = m->cfg.n_codes;
  job->init = given;
  job->keep = wc->keep;
  job->sp.greedy = true;
}

static int count_diff(const int32_t *a, const int32_t *b, size_t n) {
  int d = 0;
  for (size_t i = 0; i < n; i++) d += a[i] != b[i];
  return d;
}

static void test_parity(void) {
  gpt *m = vqgpt_gpt_load(fixture_path("window_tiny.safetensors"));
  CHECKF(m != NULL, "vqgpt_gpt_load: %s", vqgpt_last_error());
  if (!m) return;
  CHECK(m->cfg.grid_h == 4 && m->cfg.grid_w == 6 && m->cfg.cond == GPT_COND_CLASS);
  st_file io;
  if (vqgpt_st_open(&io, fixture_path("window_tiny_io.safetensors"))) {
    CHECKF(0, "vqgpt_st_open: %s", vqgpt_last_error());
    vqgpt_gpt_free(m);
    return;
  }
  for (int k = 0; k < 4; k++) {
    const window_case *wc = &cases[k];
    size_t hw = (size_t)wc->h * wc->w, n = wc->n * hw;
    int32_t classes[2], *ref = malloc(n * sizeof(int32_t)), *given = NULL;
    int32_t *out = malloc(n * sizeof(int32_t)), *again = malloc(n * sizeof(int32_t));
    int64_t sh_c[1] = {wc->n}, sh[3] = {wc->n, wc->h, wc->w};
    char name[64];
    snprintf(name, sizeof name, "case%d.classes", k);
    CHECK(vqgpt_st_read_i32(&io, name, classes, 1, sh_c) == 0);
    snprintf(name, sizeof name, "case%d.codes", k);
    CHECK(vqgpt_st_read_i32(&io, name, ref, 3, sh) == 0);
    if (wc->keep) {
      given = malloc(n * sizeof(int32_t));
      snprintf(name, sizeof name, "case%d.given", k);
      CHECK(vqgpt_st_read_i32(&io, name, given, 3, sh) == 0);
    }
    sampler_job job;
    job_for(&job, m, wc, classes, given);
    CHECKF(vqgpt_sampler_run(m, &job, out, NULL, NULL) == 0, "case %d: %s", k, vqgpt_last_error());
    CHECKF(count_diff(out, ref, n) == 0, "case %d (%dx%d): %d of %zu greedy codes differ", k, wc->h,
           wc->w, count_diff(out, ref, n), n);
    // Recomputing every prefix gives the same codes as reusing the window's keys and values.
    job.no_kv_reuse = true;
    CHECK(vqgpt_sampler_run(m, &job, again, NULL, NULL) == 0);
    CHECKF(count_diff(out, again, n) == 0, "case %d: K/V reuse differs from recomputation", k);
    // Strictly one position after another (one lane) gives the rows filled together.
    job.no_kv_reuse = false;
    job.lanes = 1;
    CHECK(vqgpt_sampler_run(m, &job, again, NULL, NULL) == 0);
    CHECKF(count_diff(out, again, n) == 0, "case %d: one lane differs from several", k);
    job.lanes = 0;
    // One sample at a time gives the batch's samples.
    job.no_kv_reuse = false;
    job.B = 1;
    for (int b = 0; b < wc->n; b++) {
      job.cond = classes + b;
      job.init = given ? given + b * hw : NULL;
      CHECK(vqgpt_sampler_run(m, &job, again, NULL, NULL) == 0);
      CHECKF(count_diff(out + b * hw, again, hw) == 0, "case %d: sample %d alone differs", k, b);
    }
    free(ref);
    free(given);
    free(out);
    free(again);
  }
  vqgpt_st_close(&io);
  vqgpt_gpt_free(m);
}

// Drawn (not greedy) samples: reuse against recomputation and batch against one-by-one, with
// top-k and temperature, on a grid with windows moving in both directions.
static void test_drawn(void) {
  gpt *m = vqgpt_gpt_load(fixture_path("window_tiny.safetensors"));
  if (!m) return;
  window_case wc = {3, 7, 9, 5};
  size_t hw = 63, n = 3 * hw;
  int32_t classes[3] = {1, 4, 9}, given[3 * 63];
  for (size_t i = 0; i < n; i++) given[i] = (int32_t)(i * 7 % 64);
  int32_t a[3 * 63], b[3 * 63], c[63];
  sampler_job job;
  job_for(&job, m, &wc, classes, given);
  job.sp.greedy = false;
  job.sp.top_k = 20;
  job.sp.temperature = 0.9f;
  job.seed = 1234;
  CHECK(vqgpt_sampler_run(m, &job, a, NULL, NULL) == 0);
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < 5; i++) CHECK(a[k * hw + i] == given[k * hw + i]);
  job.no_kv_reuse = true;
  CHECK(vqgpt_sampler_run(m, &job, b, NULL, NULL) == 0);
  CHECK(count_diff(a, b, n) == 0);
  job.no_kv_reuse = false;
  for (int lanes = 1; lanes <= 3; lanes++) {  // 3 rows overlap on this grid
    job.lanes = lanes;
    CHECK(vqgpt_sampler_run(m, &job, b, NULL, NULL) == 0);
    CHECKF(count_diff(a, b, n) == 0, "%d lane(s) differ from the default", lanes);
  }
  job.lanes = 0;
  job.B = 1;
  job.cond = classes + 2;
  job.init = given + 2 * hw;
  // Alone, sample 2 would use stream 0: its draws differ (a different class and stream).
  CHECK(vqgpt_sampler_run(m, &job, c, NULL, NULL) == 0);
  CHECK(count_diff(a + 2 * hw, c, hw) > 0);
  // The first two samples of the batch are the batch of two.
  job.B = 2;
  job.cond = classes;
  job.init = given;
  CHECK(vqgpt_sampler_run(m, &job, b, NULL, NULL) == 0);
  CHECK(count_diff(a, b, 2 * hw) == 0);
  vqgpt_gpt_free(m);
}

// The placement rule at the borders, against the fixture README's formula.
static void test_rule(void) {
  // Grid equal to the window: the target's own index (the window never moves).
  for (int i = 0; i < 6; i++) CHECK(vqgpt_sampler_window_local(i, 6, 6) == i);
  for (int i = 0; i < 5; i++) CHECK(vqgpt_sampler_window_local(i, 5, 5) == i);
  // One more than the window (even 4 in 5): start, then the end band.
  int expect5[5] = {0, 1, 2, 2, 3};
  for (int i = 0; i < 5; i++) CHECKF(vqgpt_sampler_window_local(i, 5, 4) == expect5[i], "i=%d", i);
  // Wide grid: i while i <= w/2, then w/2, then w - (n - i) in the last w/2 - 1 positions.
  int n = 13, w = 6;
  for (int i = 0; i < n; i++) {
    int want = i <= w / 2 ? i : (n - i < w / 2 ? w - (n - i) : w / 2);
    CHECKF(vqgpt_sampler_window_local(i, n, w) == want, "i=%d", i);
  }
  // Odd windows stay inside the grid (the literal rule would start one too late here).
  for (int w = 1; w <= 7; w += 2)
    for (int n = w; n < w + 6; n++)
      for (int i = 0; i < n; i++) {
        int l = vqgpt_sampler_window_local(i, n, w);
        CHECKF(l >= 0 && l < w && i - l >= 0 && i - l + w <= n, "n=%d w=%d i=%d -> %d", n, w, i, l);
      }
  CHECK(vqgpt_sampler_window_extent(3, 16) == 3 && vqgpt_sampler_window_extent(40, 16) == 16);
}

// Guidance: logits = uncond + s (cond - uncond). One position checked against the formula on
// the model's own logits; whole window-sampled grids: s = 1 is unguided sampling and s = 0 is
// sampling from the null condition, exactly.
static void test_guidance(void) {
  gpt *m = vqgpt_gpt_load(fixture_path("window_tiny.safetensors"));
  if (!m) return;
  m->cfg.null_class = 10;  // as if trained with condition dropout
  int V = m->cfg.vocab_size;
  int32_t cls[2] = {3, 8}, null[2] = {10, 10};
  float s = 2.5f;
  gpt_kv kv;
  CHECK(vqgpt_gpt_kv_init(&kv, m, 1) == 0);
  float c[64], u[64], g[64];
  CHECK(vqgpt_gpt_prefill(m, &kv, cls, 1, c) == 0 && vqgpt_gpt_prefill(m, &kv, null, 1, u) == 0);
  vqgpt_gpt_kv_free(&kv);
  for (int v = 0; v < V; v++) g[v] = u[v] + s * (c[v] - u[v]);
  int32_t want = 0;
  for (int v = 1; v < V; v++)
    if (g[v] > g[want]) want = v;
  window_case one = {1, 1, 1, 0};
  sampler_job job;
  int32_t got, a[2 * 99], b[2 * 99];
  job_for(&job, m, &one, cls, NULL);
  job.uncond = null;
  job.cfg_scale = s;
  CHECK(vqgpt_sampler_run(m, &job, &got, NULL, NULL) == 0);
  CHECKF(got == want, "guided first code %d, formula gives %d", got, want);
  window_case grid = {2, 9, 11, 0};
  job_for(&job, m, &grid, cls, NULL);
  job.sp.greedy = false;
  job.seed = 5;
  CHECK(vqgpt_sampler_run(m, &job, a, NULL, NULL) == 0);
  job.uncond = null;
  job.cfg_scale = 1.0f;
  CHECK(vqgpt_sampler_run(m, &job, b, NULL, NULL) == 0);
  CHECK(count_diff(a, b, 2 * 99) == 0);
  job.cfg_scale = 0.0f;
  CHECK(vqgpt_sampler_run(m, &job, a, NULL, NULL) == 0);
  job.cond = null;
  job.uncond = NULL;
  CHECK(vqgpt_sampler_run(m, &job, b, NULL, NULL) == 0);
  CHECK(count_diff(a, b, 2 * 99) == 0);
  job.cond = cls;
  CHECK(vqgpt_sampler_run(m, &job, b, NULL, NULL) == 0);
  CHECK(count_diff(a, b, 2 * 99) > 0);
  vqgpt_gpt_free(m);
}

static void test_errors(void) {
  gpt *m = vqgpt_gpt_load(fixture_path("window_tiny.safetensors"));
  if (!m) return;
  window_case wc = {1, 9, 13, 0};
  int32_t cls[1] = {3}, init[117] = {0}, out[117];
  sampler_job job;
  job_for(&job, m, &wc, cls, init);
  job.keep = 118;
  CHECK(vqgpt_sampler_run(m, &job, out, NULL, NULL) != 0 &&
        strstr(vqgpt_last_error(), "keeping 118"));
  job.keep = 117;  // everything kept: nothing to draw, the codes are the given ones
  CHECK(vqgpt_sampler_run(m, &job, out, NULL, NULL) == 0 && out[116] == 0);
  job.keep = 10;
  init[9] = 64;
  CHECK(vqgpt_sampler_run(m, &job, out, NULL, NULL) != 0 &&
        strstr(vqgpt_last_error(), "initial code 64"));
  init[9] = 0;
  job.window_w = 7;  // 1 + 4 * 7 - 1 = 28 positions > block_size 25
  CHECK(vqgpt_sampler_run(m, &job, out, NULL, NULL) != 0 &&
        strstr(vqgpt_last_error(), "block_size"));
  vqgpt_gpt_free(m);
}

// window_tiny saved as F16: sampled with half-precision weights (vqgpt_gpt_load_for_sampling),
// every case's greedy codes equal those of the same file in float32, window moves (prefills)
// included, with and without K/V reuse.
static void test_half_weights(void) {
  gpt *m = vqgpt_gpt_load(fixture_path("window_tiny.safetensors"));
  if (!m) return;
  char path[64];
  snprintf(path, sizeof path, "/tmp/vqgpt_test_window_%d.safetensors", (int)getpid());
  CHECK(vqgpt_gpt_save_as(m, path, ST_F16) == 0);
  gpt *a = vqgpt_gpt_load(path), *h = vqgpt_gpt_load_for_sampling(path);
  CHECKF(a && h && h->half_weights, "load: %s", vqgpt_last_error());
  for (int k = 0; k < 4 && a && h; k++) {
    const window_case *wc = &cases[k];
    size_t n = (size_t)wc->n * wc->h * wc->w;
    int32_t classes[2] = {3, 7}, *given = malloc(n * sizeof(int32_t));
    int32_t *oa = malloc(n * sizeof(int32_t)), *oh = malloc(n * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) given[i] = (int32_t)(i * 5 % 64);
    for (int reuse = 0; reuse < 2; reuse++) {
      sampler_job job;
      job_for(&job, a, wc, classes, wc->keep ? given : NULL);
      job.no_kv_reuse = !reuse;
      CHECK(vqgpt_sampler_run(a, &job, oa, NULL, NULL) == 0 &&
            vqgpt_sampler_run(h, &job, oh, NULL, NULL) == 0);
      CHECKF(count_diff(oa, oh, n) == 0, "case %d: %d half-weight greedy codes differ", k,
             count_diff(oa, oh, n));
    }
    free(given);
    free(oa);
    free(oh);
  }
  unlink(path);
  vqgpt_gpt_free(a);
  vqgpt_gpt_free(h);
  vqgpt_gpt_free(m);
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  test_half_weights();
  test_rule();
  test_parity();
  test_drawn();
  test_guidance();
  test_errors();
  return test_finish("test_window");
}
