// The machine limits the benchmark figures are read against: sgemm GFLOP/s (what the
// convolutions and the GPT's products can reach) and memory read bandwidth (what batch-1
// sampling, which reads every weight once per token, can reach). Measured, not assumed: this
// machine is shared and its figures drift.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench/bench.h"
#include "core/blas.h"
#include "core/clock.h"

#define SGEMM_N 1024
#define READ_FLOATS ((size_t)64 << 20)  // 256 MB, far beyond the caches

typedef struct {
  float *a, *b, *c;
} sgemm_ctx;

static int run_sgemm(void *p) {
  sgemm_ctx *s = p;
  vqgpt_sgemm(false, false, SGEMM_N, SGEMM_N, SGEMM_N, 1.0f, s->a, SGEMM_N, s->b, SGEMM_N, 0.0f,
              s->c, SGEMM_N);
  return 0;
}

static volatile float read_sink;
static int run_read(void *p) {
  const float *x = p;
  float total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
  for (size_t i = 0; i < READ_FLOATS; i += 16) {
    float s = 0;
    for (int k = 0; k < 16; k++) s += x[i + k];
    total += s;
  }
  read_sink = total;
  return 0;
}

int bench_machine_limits(bench_limits *out) {
  size_t nn = (size_t)SGEMM_N * SGEMM_N;
  sgemm_ctx s = {malloc(nn * sizeof(float)), malloc(nn * sizeof(float)),
                 malloc(nn * sizeof(float))};
  float *x = malloc(READ_FLOATS * sizeof(float));
  int rc = -1;
  if (s.a && s.b && s.c && x) {
    for (size_t i = 0; i < nn; i++) s.a[i] = s.b[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < READ_FLOATS; i++) x[i] = 1.0f;
    run_sgemm(&s);
    double ts = bench_best_of(3, run_sgemm, &s), tr = bench_best_of(3, run_read, x);
    out->sgemm_gflops = 2.0 * SGEMM_N * SGEMM_N * SGEMM_N / ts / 1e9;
    out->read_gbs = READ_FLOATS * sizeof(float) / tr / 1e9;
    printf(
        "machine: sgemm %.0f GFLOP/s (%d^3), memory read %.1f GB/s (%d threads, OpenBLAS core "
        "%s)\n",
        out->sgemm_gflops, SGEMM_N, out->read_gbs, omp_get_max_threads(), vqgpt_blas_corename());
    rc = 0;
  }
  free(s.a);
  free(s.b);
  free(s.c);
  free(x);
  return rc;
}
