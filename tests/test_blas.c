// core/blas.c: the core-type rule; OpenBLAS loaded in-process (no re-execution) and passive
// OpenMP waiting, with the environment left as the user gave it; sgemm (OpenBLAS and the
// built-in fallback) against a double-precision product for every transpose combination and
// odd sizes.
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/blas.h"
#include "core/rng.h"
#include "test_util.h"

static bool same(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

static void test_coretype_rule(void) {
  CHECK(same(vqgpt_blas_choose_coretype(NULL, NULL, true), "SkylakeX"));
  CHECK(same(vqgpt_blas_choose_coretype(NULL, NULL, false), NULL));
  CHECK(same(vqgpt_blas_choose_coretype("", "", true), "SkylakeX"));
  // A user's OPENBLAS_CORETYPE wins, except the images' blanket Haswell on AVX-512 CPUs.
  CHECK(same(vqgpt_blas_choose_coretype(NULL, "Zen", true), "Zen"));
  CHECK(same(vqgpt_blas_choose_coretype(NULL, "Haswell", true), "SkylakeX"));
  CHECK(same(vqgpt_blas_choose_coretype(NULL, "Haswell", false), "Haswell"));
  // The project's override wins over everything.
  CHECK(same(vqgpt_blas_choose_coretype("Haswell", "Zen", true), "Haswell"));
  CHECK(same(vqgpt_blas_choose_coretype("Sandybridge", NULL, false), "Sandybridge"));
}

static void reference(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, const float *C0, int ldc, double *out) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int k = 0; k < K; k++)
        s +=
            (double)(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
      out[i * ldc + j] = alpha * s + beta * C0[i * ldc + j];
    }
}

static void test_products(void) {
  uint64_t rng = 5;
  int M = 37, N = 29, K = 53;  // odd sizes; lda/ldb/ldc wider than the rows
  int lda = 61, ldb = 67, ldc = 31;
  float *A = alloc_f(64 * 64), *B = alloc_f(64 * 70), *C0 = alloc_f(M * ldc), *C = alloc_f(M * ldc);
  double *ref = malloc(sizeof(double) * M * ldc);
  fill_uniform(A, 64 * 64, &rng, 1);
  fill_uniform(B, 64 * 70, &rng, 1);
  fill_uniform(C0, M * ldc, &rng, 1);
  for (int v = 0; v < 8; v++) {
    bool ta = v & 1, tb = v & 2, builtin = v & 4;
    float beta = ta ? 0.5f : 0.0f;
    for (int t = 0; t < 2; t++) {
      memcpy(C, C0, sizeof(float) * M * ldc);
      if (beta == 0.0f)  // beta 0 must ignore C, NaNs included
        for (int i = 0; i < M * ldc; i++) C[i] = NAN;
      if (builtin)
        vqgpt_sgemm_builtin(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, beta, C, ldc);
      else
        vqgpt_sgemm(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, beta, C, ldc);
    }
    reference(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, beta, C0, ldc, ref);
    double worst = 0;
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) worst = fmax(worst, fabs(C[i * ldc + j] - ref[i * ldc + j]));
    CHECKF(worst < 1e-4, "sgemm%s ta=%d tb=%d: off by %g", builtin ? " (built-in)" : "", ta, tb,
           worst);
  }
  free(A), free(B), free(C0), free(C), free(ref);
}

static double cpu_seconds(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return r.ru_utime.tv_sec + r.ru_stime.tv_sec + 1e-6 * (r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

// OMP_WAIT_POLICY=PASSIVE reached libgomp (set before its constructor without touching the
// environment): between parallel regions the idle threads sleep. With libgomp's default they
// spin ~300000 iterations (milliseconds) after every region: 100 regions 1 ms apart would
// cost well over 50 ms of CPU; sleeping threads cost microseconds.
static void test_passive_waiting(void) {
  if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") || omp_get_max_threads() < 2) return;
  volatile int sink = 0;
  double c0 = cpu_seconds();
  for (int i = 0; i < 100; i++) {
#pragma omp parallel
    sink += omp_get_thread_num();
    usleep(1000);
  }
  double used = cpu_seconds() - c0;
  CHECKF(used < 0.05, "idle OpenMP threads spin: %.3f s of CPU over 100 regions", used);
}

int main(void) {
  // Nothing set the wait policy or the core type for this process's environment: both are
  // applied only where the libraries read them (preinit, and during the dlopen).
  const char *wait0 = getenv("OMP_WAIT_POLICY"), *core0 = getenv("OPENBLAS_CORETYPE");
  char *wait = wait0 ? strdup(wait0) : NULL, *core = core0 ? strdup(core0) : NULL;
  test_coretype_rule();
  test_passive_waiting();
  test_products();
  const char *name = vqgpt_blas_corename();
  CHECKF(strncmp(name, "none", 4) != 0, "OpenBLAS not loaded: %s", name);
  CHECK(same(getenv("OMP_WAIT_POLICY"), wait));
  CHECK(same(getenv("OPENBLAS_CORETYPE"), core));
  free(wait), free(core);
  return test_finish("test_blas");
}
