#include "core/blas.h"

#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    if (saved)
      setenv("OPENBLAS_CORETYPE", saved, 1);
    else
      unsetenv("OPENBLAS_CORETYPE");
  }
  free(saved);
  if (!h) return;
  blas_sgemm = (sgemm_fn *)dlsym(h, "cblas_sgemm");
  blas_corename = (corename_fn *)dlsym(h, "openblas_get_corename");
  if (!blas_sgemm) blas_corename = NULL;
}

static void blas_init(void) { pthread_once(&blas_once, blas_load); }

// OMP_WAIT_POLICY=PASSIVE unless the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT: our OpenMP
// loops and OpenBLAS's threads take turns on the same cores, and with libgomp's default active
// waiting the idle threads of one spin against the working threads of the other (measured on
// a shared machine: a VQGAN encode 8x slower, batch-1 GPT sampling 30x slower).
// libgomp reads the variable once, in its constructor, which runs before any constructor of
// the program; only the executable's preinit_array runs earlier, and there libc's environ is
// not set up yet (setenv would be lost: libc then points environ at the kernel's array).
// So the kernel's array itself carries the setting for that window: one entry that no
// initialiser reads is lent to "OMP_WAIT_POLICY=PASSIVE" and given back by the constructor
// below, before main. The environment the program and its children see is the user's.
extern char **environ;
static char wait_policy_entry[] = "OMP_WAIT_POLICY=PASSIVE";
static char **lent_slot, *lent_entry;

static bool starts_with(const char *s, const char *prefix) {
  return !strncmp(s, prefix, strlen(prefix));
}

// Not lent: what the OpenMP and BLAS runtimes, the sanitizers, libc and the loader read.
static bool lendable(const char *entry) {
  static const char *const keep[] = {"OMP_",  "GOMP_",  "KMP_",  "OPENBLAS_", "GOTO_",  "VQGPT_",
                                     "ASAN_", "UBSAN_", "LSAN_", "LD_",       "GLIBC_", "MALLOC_",
                                     "LC_",   "LANG",   "TZ",    NULL};
  if (!strchr(entry, '=')) return false;
  for (const char *const *k = keep; *k; k++)
    if (starts_with(entry, *k)) return false;
  return true;
}

static void lend_wait_policy(int argc, char **argv, char **envp) {
  (void)argc, (void)argv;
  char **slot = NULL;
  for (char **e = envp; e && *e; e++) {
    if (starts_with(*e, "OMP_WAIT_POLICY=") || starts_with(*e, "GOMP_SPINCOUNT=")) return;
    if (!slot && lendable(*e)) slot = e;
  }
  if (!slot) return;  // an empty environment: libgomp's default waiting
  lent_slot = slot;
  lent_entry = *slot;
  *slot = wait_policy_entry;
}
__attribute__((section(".preinit_array"),
               used)) static void (*const preinit_wait_policy)(int, char **,
                                                               char **) = lend_wait_policy;

__attribute__((constructor(101))) static void return_lent_entry(void) {
  if (!lent_slot) return;
  *lent_slot = lent_entry;
  // An initialiser that called setenv left environ a copy of the array: fix the copy too.
  if (getenv("OMP_WAIT_POLICY") == wait_policy_entry + strlen("OMP_WAIT_POLICY=")) {
    unsetenv("OMP_WAIT_POLICY");
    putenv(lent_entry);
  }
  lent_slot = NULL;
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
