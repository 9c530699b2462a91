#include "core/parallel.h"

#include <omp.h>

int vqgpt_scratch_threads(void) {
  // Racing first calls store the same value.
  static int fixed;
  if (!fixed) fixed = omp_get_max_threads();
  return fixed;
}

void vqgpt_sum_shares(float *dst, bool accumulate, const float *shares, size_t stride, int n_shares,
                      size_t len) {
#pragma omp parallel for schedule(static) if (len >= VQGPT_PAR_MIN)
  for (size_t e = 0; e < len; e++) {
    float acc = 0;
    for (int t = 0; t < n_shares; t++) acc += shares[(size_t)t * stride + e];
    dst[e] = accumulate ? dst[e] + acc : acc;
  }
}

int vqgpt_team_threads(void) {
  int now = omp_get_max_threads(), cap = vqgpt_scratch_threads();
  return now < cap ? now : cap;
}
