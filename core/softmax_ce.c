#include "core/softmax_ce.h"

#include <math.h>
#include <stddef.h>

#include "core/parallel.h"

double vqgpt_softmax_ce_forward(float *probs, float *losses, const float *logits,
                                const int32_t *targets, int N, int V, int *n_valid) {
#pragma omp parallel for schedule(static) if ((size_t)N * V >= VQGPT_PAR_MIN)
  for (int n = 0; n < N; n++) {
    const float *x = logits + (size_t)n * V;  // (V)
    float *p = probs + (size_t)n * V;         // (V)
    float mx = -INFINITY;
    for (int v = 0; v < V; v++) mx = x[v] > mx ? x[v] : mx;
    double sum = 0;
    int t = targets[n];
    float xt = t >= 0 ? x[t] : 0.0f;  // read before p overwrites it when aliased
    for (int v = 0; v < V; v++) {
      p[v] = expf(x[v] - mx);
      sum += p[v];
    }
    float inv = (float)(1.0 / sum);
    for (int v = 0; v < V; v++) p[v] *= inv;
    losses[n] = t >= 0 ? (float)(log(sum) + mx - xt) : 0.0f;
  }
  double total = 0;
  int count = 0;
  for (int n = 0; n < N; n++)
    if (targets[n] >= 0) {
      total += losses[n];
      count++;
    }
  *n_valid = count;
  return count ? total / count : 0.0;
}

void vqgpt_softmax_ce_backward(float *dlogits, const float *probs, const int32_t *targets, int N,
                               int V, int n_valid, float dloss) {
  float s = n_valid > 0 ? dloss / (float)n_valid : 0.0f;
#pragma omp parallel for schedule(static) if ((size_t)N * V >= VQGPT_PAR_MIN)
  for (int n = 0; n < N; n++) {
    const float *p = probs + (size_t)n * V;
    float *d = dlogits + (size_t)n * V;
    int t = targets[n];
    if (t < 0) {
      for (int v = 0; v < V; v++) d[v] = 0.0f;
      continue;
    }
    for (int v = 0; v < V; v++) d[v] = s * p[v];
    d[t] -= s;
  }
}
