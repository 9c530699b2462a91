#include "core/blas.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool cpu_has_avx512(void) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

// The core OpenBLAS should use: the user's explicit VQGPT_BLAS_CORETYPE, else SkylakeX on
// AVX-512 CPUs. An inherited OPENBLAS_CORETYPE is not trusted: machine images set it to
// Haswell, which halves sgemm speed here.
static const char *wanted_coretype(void) {
  const char *user = getenv("VQGPT_BLAS_CORETYPE");
  if (user && user[0]) return user;
  return cpu_has_avx512() ? "SkylakeX" : NULL;
}

// Our OpenMP loops and OpenBLAS's threads take turns on the same cores; with libgomp's
// default active waiting, idle threads of one spin against the working threads of the other
// (measured: a 3x3 conv at 36 instead of 225 GFLOP/s when another process shares the
// cores). Passive waiting costs little here: every parallel region is large.
static bool needs_wait_policy(void) { return getenv("OMP_WAIT_POLICY") == NULL; }

void vqgpt_blas_setup(char **argv) {
  const char *want = wanted_coretype();
  const char *have = getenv("OPENBLAS_CORETYPE");
  bool coretype_ok = !want || (have && !strcmp(have, want));
  if (coretype_ok && !needs_wait_policy()) return;
  if (!coretype_ok) setenv("OPENBLAS_CORETYPE", want, 1);
  if (needs_wait_policy()) setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);
  // If re-exec is impossible the program still runs correctly, only slower.
}

const char *vqgpt_blas_corename(void) { return openblas_get_corename(); }

void vqgpt_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
