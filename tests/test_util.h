// Tiny test harness shared by the CTest executables: checks that count failures, the
// fixtures' relative-error measure, and a finite-difference gradient checker.
#ifndef VQGPT_TEST_UTIL_H
#define VQGPT_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures = 0;
static int test_checks = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    test_checks++;                                                             \
    if (!(cond)) {                                                             \
      test_failures++;                                                         \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

#define CHECKF(cond, ...)                                           \
  do {                                                              \
    test_checks++;                                                  \
    if (!(cond)) {                                                  \
      test_failures++;                                              \
      fprintf(stderr, "%s:%d: CHECK failed: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                                 \
      fputc('\n', stderr);                                          \
    }                                                               \
  } while (0)

// Closing line in the plain form CI reads: "N passed, N failed".
static inline int test_finish(const char *name) {
  printf("%s: %d passed, %d failed\n", name, test_checks - test_failures, test_failures);
  return test_failures ? 1 : 0;
}

// The fixtures' tolerance measure: max |a - ref| / (max |ref| + 1e-6).
static inline double rel_err(const float *a, const float *ref, size_t n) {
  double md = 0, mr = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - ref[i]);
    if (d > md || d != d) md = d != d ? INFINITY : d;
    if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
  }
  return md / (mr + 1e-6);
}

// The same measure against a double-precision reference (naive kernels in the tests).
static inline double rel_err_d(const float *a, const double *ref, size_t n) {
  double md = 0, mr = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs(a[i] - ref[i]);
    if (d > md || d != d) md = d != d ? INFINITY : d;
    if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
  }
  return md / (mr + 1e-6);
}

#define CHECK_CLOSE(a, ref, n, tol, what)                                                  \
  do {                                                                                     \
    double e_ = rel_err((a), (ref), (n));                                                  \
    CHECKF(e_ < (tol), "%s: relative error %.3g exceeds %.3g", (what), e_, (double)(tol)); \
  } while (0)

// A per-test temporary directory (the test creates it with mkdtemp) and files in it.
static char tmpdir[64];

typedef struct {
  char s[256];
} pathbuf;

static inline pathbuf tmp_path(const char *name) {
  pathbuf b;
  snprintf(b.s, sizeof b.s, "%s/%s", tmpdir, name);
  return b;
}

static inline int write_bytes(const char *path, const void *data, size_t n) {
  FILE *fp = fopen(path, "wb");
  if (!fp) return -1;
  size_t w = n ? fwrite(data, 1, n, fp) : 0;
  return fclose(fp) == 0 && w == n ? 0 : -1;
}

static inline unsigned char *read_all(const char *path, size_t *n) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  fseek(fp, 0, SEEK_END);
  long sz = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  unsigned char *b = malloc(sz > 0 ? (size_t)sz : 1);
  if (b && fread(b, 1, (size_t)sz, fp) != (size_t)sz) {
    free(b);
    b = NULL;
  }
  fclose(fp);
  *n = (size_t)sz;
  return b;
}

// Path of a fixture file: $VQGPT_FIXTURES/name (CTest sets it), else fixtures/name.
static inline const char *fixture_path(const char *name) {
  static char buf[4096];
  const char *dir = getenv("VQGPT_FIXTURES");
  snprintf(buf, sizeof buf, "%s/%s", dir ? dir : "fixtures", name);
  return buf;
}

// n floats (at least one), or the test stops: a test has nothing to check without them.
static inline float *alloc_f(size_t n) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

// Deterministic fill in [-scale, scale] for test inputs.
static inline void fill_uniform(float *x, size_t n, uint64_t *state, float scale) {
  for (size_t i = 0; i < n; i++) {
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    x[i] = scale * (2.0f * (float)((*state >> 40) / 16777216.0) - 1.0f);
  }
}

// Finite-difference check of an analytic gradient. loss(ctx) computes a scalar from the
// current contents of x (n values); grad holds the analytic dL/dx. A sample of up to
// `samples` coordinates is perturbed by +-h in double-step central differences.
// Returns the worst relative error max|num - ana| / (max|ana| + 1e-6) over the sample.
typedef double (*test_loss_fn)(void *ctx);
static inline double fd_check(test_loss_fn loss, void *ctx, float *x, const float *grad, size_t n,
                              size_t samples, float h) {
  double maxdiff = 0, maxg = 0;
  for (size_t i = 0; i < n; i++)
    if (fabs(grad[i]) > maxg) maxg = fabs(grad[i]);
  size_t step = n > samples ? n / samples : 1;
  for (size_t i = 0; i < n; i += step) {
    float orig = x[i];
    x[i] = orig + h;
    double lp = loss(ctx);
    x[i] = orig - h;
    double lm = loss(ctx);
    x[i] = orig;
    double num = (lp - lm) / (2.0 * h);
    double d = fabs(num - grad[i]);
    if (d > maxdiff) maxdiff = d;
  }
  return maxdiff / (maxg + 1e-6);
}

#endif
