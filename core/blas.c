#include "core/blas.h"

#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// OpenBLAS is not linked: it is loaded at first use, so that the core type can be chosen in
// this process (OpenBLAS reads OPENBLAS_CORETYPE once, in its load-time constructor).
// VQGPT_OPENBLAS_PATH (from CMake: the library pkg-config names) is tried first, then the
// soname.
#ifndef VQGPT_OPENBLAS_PATH
#define VQGPT_OPENBLAS_PATH "libopenblas.so.0"
#endif

// __typeof__ keeps the dlsym'd pointers checked against the header's prototypes.
typedef __typeof__(cblas_sgemm) sgemm_fn;
typedef __typeof__(openblas_get_corename) corename_fn;

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static sgemm_fn *blas_sgemm;
static corename_fn *blas_corename;

static bool cpu_has_avx512(void) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

const char *vqgpt_blas_choose_coretype(const char *project, const char *user, bool avx512) {
  if (project && project[0]) return project;
  if (user && user[0] && !(avx512 && !strcmp(user, "Haswell"))) return user;
  return avx512 ? "SkylakeX" : NULL;
}

static const char *wanted_coretype(void) {
  return vqgpt_blas_choose_coretype(getenv("VQGPT_BLAS_CORETYPE"), getenv("OPENBLAS_CORETYPE"),
                                    cpu_has_avx512());
}

static void *open_openblas(void) {
  void *h = dlopen(VQGPT_OPENBLAS_PATH, RTLD_NOW | RTLD_LOCAL);
  if (!h) h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
  return h;
}

// Loads OpenBLAS with the wanted core type in the environment only for the duration of the
// load: the process's environment (and its children's) stays what the user gave.
static void blas_load(void) {
  const char *want = wanted_coretype();
  const char *had = getenv("OPENBLAS_CORETYPE");
  char *saved = had ? strdup(had) : NULL;
  bool swap = want && (!had || strcmp(had, want));
  if (swap) setenv("OPENBLAS_CORETYPE", want, 1);
  void *h = open_openblas();
  if (swap) {
    if (saved) setenv("OPENBLAS_CORETYPE", saved, 1);
    else unsetenv("OPENBLAS_CORETYPE");
  }
  free(saved);
  if (!h) return;
  blas_sgemm = (sgemm_fn *)dlsym(h, "cblas_sgemm");
  blas_corename = (corename_fn *)dlsym(h, "openblas_get_corename");
  if (!blas_sgemm) blas_corename = NULL;
}

static void blas_init(void) { pthread_once(&blas_once, blas_load); }

// OMP_WAIT_POLICY must be in the environment when libgomp initialises, which happens before
// any constructor of the program runs. The executable's preinit_array runs earlier still, so
// an unset OMP_WAIT_POLICY (and GOMP_SPINCOUNT) is set to PASSIVE there: our OpenMP loops and
// OpenBLAS's threads take turns on the same cores, and with libgomp's default active waiting
// the idle threads of one spin against the working threads of the other (measured: a 3x3 conv
// at 36 instead of 225 GFLOP/s when another process shares the cores). glibc re-reads the
// environment from the stack before main, so the variable does not outlive libgomp's start
// (the constructor below removes it in any case): the user's environment is left as given.
static bool wait_policy_set_here;

static void set_wait_policy(int argc, char **argv, char **envp) {
  (void)argc, (void)argv, (void)envp;
  if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
  wait_policy_set_here = setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0;
}
__attribute__((section(".preinit_array"), used)) static void (*const preinit_wait_policy)(
    int, char **, char **) = set_wait_policy;

__attribute__((constructor)) static void unset_wait_policy(void) {
  const char *v = getenv("OMP_WAIT_POLICY");
  if (wait_policy_set_here && v && !strcmp(v, "PASSIVE")) unsetenv("OMP_WAIT_POLICY");
}

void vqgpt_blas_setup(char **argv) {
  (void)argv;
  blas_init();
}

const char *vqgpt_blas_corename(void) {
  blas_init();
  if (blas_corename) return blas_corename();
  return blas_sgemm ? "unknown" : "none (libopenblas not found: built-in sgemm)";
}

void vqgpt_sgemm_builtin(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                          const float *A, int lda, const float *B, int ldb, float beta, float *C,
                          int ldc) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      float s = 0;
      for (int k = 0; k < K; k++)
        s += (trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
             (trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
      float *c = &C[(size_t)i * ldc + j];
      *c = alpha * s + (beta == 0.0f ? 0.0f : beta * *c);
    }
}

void vqgpt_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc) {
  blas_init();
  if (!blas_sgemm) {
    vqgpt_sgemm_builtin(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  blas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
             trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
