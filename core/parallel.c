#include "core/parallel.h"

#include <omp.h>

int vqgpt_scratch_threads(void) {
  // Racing first calls store the same value.
  static int fixed;
  if (!fixed) fixed = omp_get_max_threads();
  return fixed;
}

int vqgpt_team_threads(void) {
  int now = omp_get_max_threads(), cap = vqgpt_scratch_threads();
  return now < cap ? now : cap;
}
