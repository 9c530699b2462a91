// Logits processing and selection: temperature, top-k (ties with the k-th value kept, as the
// reference's top_k_logits), top-p, token-range limits, argmax, draws that follow the softmax,
// seed reproducibility of the batched sampler, and parameter range checks.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/blas.h"
#include "core/error.h"
#include "core/rng.h"
#include "sampling/logits.h"
#include "sampling/sampler.h"
#include "test_util.h"

static int count_finite(const float *x, int n) {
  int c = 0;
  for (int i = 0; i < n; i++) c += x[i] > -INFINITY;
  return c;
}

static void test_top_k(void) {
  logits_scratch s;
  CHECK(vqgpt_logits_scratch_init(&s, 8) == 0);
  float x[8] = {0.5f, 3.0f, -1.0f, 2.0f, 2.0f, 7.0f, 0.0f, 2.0f};
  vqgpt_logits_top_k(x, 8, 2, &s);
  CHECK(count_finite(x, 8) == 2 && x[5] == 7.0f && x[1] == 3.0f);
  // Ties with the k-th largest survive: k = 3 keeps 7, 3 and all three 2s.
  float y[8] = {0.5f, 3.0f, -1.0f, 2.0f, 2.0f, 7.0f, 0.0f, 2.0f};
  vqgpt_logits_top_k(y, 8, 3, &s);
  CHECK(count_finite(y, 8) == 5 && y[3] == 2.0f && y[4] == 2.0f && y[7] == 2.0f &&
        y[0] == -INFINITY);
  float z[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  vqgpt_logits_top_k(z, 8, 8, &s);  // k = V keeps all
  CHECK(count_finite(z, 8) == 8);
  vqgpt_logits_top_k(z, 8, 1, &s);
  CHECK(count_finite(z, 8) == 1 && z[7] == 8.0f);
  // Against a sort on a larger random row.
  int V = 1000;
  logits_scratch big;
  CHECK(vqgpt_logits_scratch_init(&big, V) == 0);
  float *r = malloc(sizeof(float) * V), *sorted = malloc(sizeof(float) * V);
  uint64_t st = 3;
  fill_uniform(r, V, &st, 5);
  memcpy(sorted, r, sizeof(float) * V);
  for (int i = 1; i < V; i++)  // insertion sort, descending
    for (int j = i; j > 0 && sorted[j] > sorted[j - 1]; j--) {
      float t = sorted[j];
      sorted[j] = sorted[j - 1];
      sorted[j - 1] = t;
    }
  vqgpt_logits_top_k(r, V, 37, &big);
  int kept = 0, wrong = 0;
  for (int i = 0; i < V; i++)
    if (r[i] > -INFINITY) {
      kept++;
      wrong += r[i] < sorted[36];
    }
  CHECK(kept == 37 && wrong == 0);
  free(r);
  free(sorted);
  vqgpt_logits_scratch_free(&big);
  vqgpt_logits_scratch_free(&s);
}

static void test_top_p_temperature(void) {
  logits_scratch s;
  CHECK(vqgpt_logits_scratch_init(&s, 4) == 0);
  // probabilities 0.5, 0.25, 0.125, 0.125
  float base[4] = {logf(0.125f), logf(0.5f), logf(0.125f), logf(0.25f)}, x[4];
  memcpy(x, base, sizeof x);
  vqgpt_logits_top_p(x, 4, 0.5f, &s);  // the top token alone reaches 0.5
  CHECK(count_finite(x, 4) == 1 && x[1] > -INFINITY);
  memcpy(x, base, sizeof x);
  vqgpt_logits_top_p(x, 4, 0.6f, &s);
  CHECK(count_finite(x, 4) == 2 && x[1] > -INFINITY && x[3] > -INFINITY);
  memcpy(x, base, sizeof x);
  vqgpt_logits_top_p(x, 4, 0.8f, &s);  // 0.75 < 0.8: a third token; the tie goes to the lower index
  CHECK(count_finite(x, 4) == 3 && x[0] > -INFINITY && x[2] == -INFINITY);
  memcpy(x, base, sizeof x);
  vqgpt_logits_top_p(x, 4, 1.0f, &s);
  CHECK(count_finite(x, 4) == 4);
  float t[3] = {1.0f, -2.0f, 4.0f};
  vqgpt_logits_temperature(t, 3, 0.5f);
  CHECK(t[0] == 2.0f && t[1] == -4.0f && t[2] == 8.0f);
  float l[5] = {1, 2, 3, 4, 5};
  vqgpt_logits_limit(l, 5, 3);
  CHECK(count_finite(l, 5) == 3 && vqgpt_logits_argmax(l, 5) == 2);
  float a[4] = {1, 5, 5, 2};
  CHECK(vqgpt_logits_argmax(a, 4) == 1);  // first of equal maxima
  vqgpt_logits_scratch_free(&s);
}

// A temperature so small that logit / T overflows acts as its limit, greedy: the largest logit
// (every one equal to it) is kept at 0, the others go to -inf, and a draw takes the argmax.
static void test_tiny_temperature(void) {
  logits_scratch s;
  CHECK(vqgpt_logits_scratch_init(&s, 5) == 0);
  sampling_params sp;
  vqgpt_sampling_params_default(&sp);
  float tiny[3] = {1e-45f, 1e-38f, 1e-30f};
  for (int k = 0; k < 3; k++) {
    sp.temperature = tiny[k];
    for (uint64_t seed = 1; seed <= 20; seed++) {
      // Several logits would overflow to +inf: the softmax of those is NaN.
      float x[5] = {3.0f, 7.5f, -2.0f, 7.25f, -INFINITY};
      uint64_t rng = seed;
      CHECKF(vqgpt_logits_select(x, 5, &sp, &rng, &s) == 1, "T = %g, seed %d", tiny[k], (int)seed);
    }
    if (k == 2) continue;  // 7.5 / 1e-30 does not overflow: an ordinary division
    float x[5] = {3.0f, 7.5f, -2.0f, 7.5f, -INFINITY};
    vqgpt_logits_temperature(x, 5, tiny[k]);
    CHECK(x[1] == 0 && x[3] == 0 && x[0] == -INFINITY && x[2] == -INFINITY && x[4] == -INFINITY);
  }
  // Small but not overflowing: an ordinary division.
  float y[2] = {1.0f, 2.0f};
  vqgpt_logits_temperature(y, 2, 1e-30f);
  CHECK(y[0] == 1e30f && y[1] == 2e30f);
  // A +inf logit: the draw is its argmax, not a NaN walk.
  float z[3] = {0.0f, INFINITY, 1.0f};
  uint64_t rng = 3;
  CHECK(vqgpt_logits_sample(z, 3, &rng, &s) == 1);
  vqgpt_logits_scratch_free(&s);
}

// Draws follow softmax(logits / T) within the top-k set.
static void test_draw_distribution(void) {
  int V = 5, n = 40000;
  logits_scratch s;
  CHECK(vqgpt_logits_scratch_init(&s, V) == 0);
  float base[5] = {0.0f, 1.0f, 2.0f, -1.0f, 0.5f};
  sampling_params sp;
  vqgpt_sampling_params_default(&sp);
  sp.temperature = 2.0f;
  sp.top_k = 3;
  int counts[5] = {0};
  uint64_t rng = 11;
  for (int i = 0; i < n; i++) {
    float x[5];
    memcpy(x, base, sizeof x);
    counts[vqgpt_logits_select(x, V, &sp, &rng, &s)]++;
  }
  // top-3 of base: 2, 1, 0.5 -> indices 2, 1, 4; probabilities from exp(x / 2)
  double z = exp(1.0) + exp(0.5) + exp(0.25), worst = 0;
  double expect[5] = {0, exp(0.5) / z, exp(1.0) / z, 0, exp(0.25) / z};
  for (int v = 0; v < V; v++) worst = fmax(worst, fabs((double)counts[v] / n - expect[v]));
  CHECKF(worst < 0.01, "draw frequencies off by %g", worst);
  CHECK(counts[0] == 0 && counts[3] == 0);
  sp.greedy = true;
  float x[5];
  memcpy(x, base, sizeof x);
  CHECK(vqgpt_logits_select(x, V, &sp, &rng, &s) == 2);
  vqgpt_logits_scratch_free(&s);
}

static void test_params_check(void) {
  sampling_params sp;
  vqgpt_sampling_params_default(&sp);
  CHECK(vqgpt_sampling_params_check(&sp, 10) == 0);
  sp.temperature = 0;
  CHECK(vqgpt_sampling_params_check(&sp, 10) != 0 && strstr(vqgpt_last_error(), "temperature"));
  vqgpt_sampling_params_default(&sp);
  sp.top_k = 11;
  CHECK(vqgpt_sampling_params_check(&sp, 10) != 0 && strstr(vqgpt_last_error(), "top-k"));
  sp.top_k = -1;
  CHECK(vqgpt_sampling_params_check(&sp, 10) != 0);
  sp.top_k = 10;
  CHECK(vqgpt_sampling_params_check(&sp, 10) == 0);
  sp.top_p = 0;
  CHECK(vqgpt_sampling_params_check(&sp, 10) != 0 && strstr(vqgpt_last_error(), "top-p"));
  sp.top_p = 1.01f;
  CHECK(vqgpt_sampling_params_check(&sp, 10) != 0);
}

// The batched sampler: a seed reproduces the batch; codes respect the allowed range; sequences
// in one batch are independent draws.
static void test_sampler(void) {
  gpt_config cfg = {.vocab_size = 40, .block_size = 12, .n_layer = 1, .n_head = 2, .n_embd = 16};
  vqgpt_gpt_config_defaults(&cfg);
  uint64_t init = 5;
  gpt *m = vqgpt_gpt_create(&cfg, &init);
  CHECK(m != NULL);
  if (!m) return;
  for (size_t i = 0; i < m->n_params; i++) m->params[i] += 0.5f * vqgpt_rng_normal(&init);
  int32_t cond[3] = {0, 0, 0}, a[36], b[36], c[36];
  sampler_job job;
  vqgpt_sampler_job_default(&job);
  job.B = 3;
  job.n_cond = 1;
  job.cond = cond;
  job.grid_h = job.window_h = 3;
  job.grid_w = job.window_w = 4;
  job.n_allowed = 25;
  job.seed = 77;
  CHECK(vqgpt_sampler_run(m, &job, a, NULL, NULL) == 0);
  CHECK(vqgpt_sampler_run(m, &job, b, NULL, NULL) == 0);
  job.seed = 78;
  CHECK(vqgpt_sampler_run(m, &job, c, NULL, NULL) == 0);
  CHECK(memcmp(a, b, sizeof a) == 0);
  CHECK(memcmp(a, c, sizeof a) != 0);
  CHECK(memcmp(a, a + 12, 12 * sizeof(int32_t)) != 0);
  int out_of_range = 0;
  for (int i = 0; i < 36; i++) out_of_range += a[i] < 0 || a[i] >= 25;
  CHECK(out_of_range == 0);
  // Sample k depends only on the seed and k: sample 1 alone (as sample 0 of a batch of one
  // whose stream is its own) equals sample 1 of the batch.
  job.seed = 77;
  job.B = 2;
  CHECK(vqgpt_sampler_run(m, &job, c, NULL, NULL) == 0);
  CHECK(memcmp(a, c, 24 * sizeof(int32_t)) == 0);
  job.B = 3;
  job.sp.temperature = -1;
  CHECK(vqgpt_sampler_run(m, &job, a, NULL, NULL) != 0);
  vqgpt_sampling_params_default(&job.sp);
  job.n_allowed = 41;  // range > vocab
  CHECK(vqgpt_sampler_run(m, &job, a, NULL, NULL) != 0);
  job.n_allowed = 25;
  int32_t bad_cond[3] = {0, 40, 0};
  job.cond = bad_cond;
  CHECK(vqgpt_sampler_run(m, &job, a, NULL, NULL) != 0);
  vqgpt_gpt_free(m);
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  test_top_k();
  test_top_p_temperature();
  test_tiny_temperature();
  test_draw_distribution();
  test_params_check();
  test_sampler();
  return test_finish("test_sampling");
}
