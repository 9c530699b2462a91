#include "sampling/logits.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"

void vqgpt_sampling_params_default(sampling_params *sp) {
  sp->temperature = 1.0f;
  sp->top_k = 0;
  sp->top_p = 1.0f;
  sp->greedy = false;
}

int vqgpt_sampling_params_check(const sampling_params *sp, int vocab) {
  if (!(sp->temperature > 0) || !isfinite(sp->temperature))
    return vqgpt_error("--temperature must be > 0 (got %g)", sp->temperature);
  if (sp->top_k < 0 || sp->top_k > vocab)
    return vqgpt_error("--top-k must be in [1, %d] (got %d)", vocab, sp->top_k);
  if (!(sp->top_p > 0 && sp->top_p <= 1))
    return vqgpt_error("--top-p must be in (0, 1] (got %g)", sp->top_p);
  return 0;
}

int vqgpt_logits_scratch_init(logits_scratch *s, int V) {
  s->V = V;
  s->values = malloc((size_t)V * sizeof(float));
  s->pairs = malloc((size_t)V * sizeof *s->pairs);
  if (!s->values || !s->pairs) {
    vqgpt_logits_scratch_free(s);
    return vqgpt_error("out of memory for sampling scratch");
  }
  return 0;
}

void vqgpt_logits_scratch_free(logits_scratch *s) {
  free(s->values);
  free(s->pairs);
  s->values = NULL;
  s->pairs = NULL;
}

void vqgpt_logits_limit(float *logits, int V, int n_allowed) {
  for (int v = n_allowed < 0 ? 0 : n_allowed; v < V; v++) logits[v] = -INFINITY;
}

void vqgpt_logits_temperature(float *logits, int V, float temperature) {
  if (temperature == 1.0f) return;
  // Dividing by a tiny temperature can overflow: two logits at +inf make the softmax NaN. When
  // any finite logit would become infinite, the temperature has reached its limit T -> 0,
  // where all the mass is on the largest logit: that one (every one equal to it, on a tie)
  // becomes 0 and the others -inf, i.e. greedy selection.
  float mx = -INFINITY, big = 0;
  for (int v = 0; v < V; v++) {
    if (!isfinite(logits[v])) continue;
    mx = logits[v] > mx ? logits[v] : mx;
    big = fabsf(logits[v]) > big ? fabsf(logits[v]) : big;
  }
  if (isinf(big / temperature)) {
    for (int v = 0; v < V; v++) logits[v] = logits[v] == mx ? 0.0f : -INFINITY;
    return;
  }
  for (int v = 0; v < V; v++) logits[v] /= temperature;
}

// The k-th largest of a[0..n) (1-based k), by quickselect on a scratch copy; O(n) expected.
static float kth_largest(float *a, int n, int k) {
  int lo = 0, hi = n - 1, want = k - 1;
  while (lo < hi) {
    float pivot = a[lo + (hi - lo) / 2];
    int i = lo, j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) {
        float t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (want <= j)
      hi = j;
    else if (want >= i)
      lo = i;
    else
      return a[want];
  }
  return a[want];
}

void vqgpt_logits_top_k(float *logits, int V, int k, logits_scratch *s) {
  if (k <= 0 || k >= V) return;
  memcpy(s->values, logits, (size_t)V * sizeof(float));
  float kth = kth_largest(s->values, V, k);
  for (int v = 0; v < V; v++)
    if (logits[v] < kth) logits[v] = -INFINITY;
}

static int by_logit_desc(const void *a, const void *b) {
  const logits_pair *x = a, *y = b;
  if (x->value != y->value) return x->value > y->value ? -1 : 1;
  return (x->index > y->index) - (x->index < y->index);
}

void vqgpt_logits_top_p(float *logits, int V, float p, logits_scratch *s) {
  if (p >= 1.0f) return;
  float mx = -INFINITY;
  for (int v = 0; v < V; v++) mx = logits[v] > mx ? logits[v] : mx;
  if (mx == -INFINITY) return;
  int n = 0;
  double sum = 0;
  for (int v = 0; v < V; v++)
    if (logits[v] > -INFINITY) {
      s->pairs[n].value = logits[v];
      s->pairs[n++].index = v;
      sum += exp((double)logits[v] - mx);
    }
  qsort(s->pairs, (size_t)n, sizeof *s->pairs, by_logit_desc);
  // Keep the smallest prefix of the sorted tokens whose probability reaches p.
  double cum = 0;
  int keep = 0;
  while (keep < n && cum < p) {
    cum += exp((double)s->pairs[keep].value - mx) / sum;
    keep++;
  }
  for (int i = keep; i < n; i++) logits[s->pairs[i].index] = -INFINITY;
}

void vqgpt_logits_process(float *logits, int V, const sampling_params *sp, logits_scratch *s) {
  vqgpt_logits_temperature(logits, V, sp->temperature);
  vqgpt_logits_top_k(logits, V, sp->top_k, s);
  vqgpt_logits_top_p(logits, V, sp->top_p, s);
}

int32_t vqgpt_logits_argmax(const float *logits, int V) {
  int32_t best = 0;
  for (int v = 1; v < V; v++)
    if (logits[v] > logits[best]) best = v;
  return best;
}

int32_t vqgpt_logits_sample(const float *logits, int V, uint64_t *rng, logits_scratch *s) {
  float mx = -INFINITY;
  for (int v = 0; v < V; v++) mx = logits[v] > mx ? logits[v] : mx;
  // A +inf logit (or none above -inf) has no softmax: its limit is the argmax.
  if (!isfinite(mx)) return vqgpt_logits_argmax(logits, V);
  double sum = 0;
  for (int v = 0; v < V; v++) {
    float e = logits[v] > -INFINITY ? expf(logits[v] - mx) : 0.0f;
    s->values[v] = e;
    sum += e;
  }
  double u = vqgpt_rng_uniform_double(rng) * sum, cum = 0;
  int32_t last = 0;
  for (int v = 0; v < V; v++) {
    if (s->values[v] == 0.0f) continue;
    last = v;
    cum += s->values[v];
    if (u < cum) return v;
  }
  return last;  // rounding left u at the very top: the last token with mass
}

int32_t vqgpt_logits_select(float *logits, int V, const sampling_params *sp, uint64_t *rng,
                            logits_scratch *s) {
  if (sp->greedy) return vqgpt_logits_argmax(logits, V);
  vqgpt_logits_process(logits, V, sp, s);
  return vqgpt_logits_sample(logits, V, rng, s);
}
