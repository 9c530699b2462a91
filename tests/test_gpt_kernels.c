// Kernels of the GPT: finite-difference checks of every backward (linear, layernorm, gelu,
// causal attention with and without dropout, softmax cross-entropy, dropout), the KV-cache
// attention step against the full causal forward, AdamW against PyTorch's formula, and RNG.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/adamw.h"
#include "core/blas.h"
#include "core/causal_attention.h"
#include "core/dropout.h"
#include "core/gelu.h"
#include "core/layernorm.h"
#include "core/linear.h"
#include "core/rng.h"
#include "core/softmax_ce.h"
#include "test_util.h"

// Scalar loss sum(out * w) in double, for a random weighting w of the output.
static double weighted_sum(const float *out, const float *w, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)out[i] * w[i];
  return s;
}

static float *alloc_fill(size_t n, uint64_t *st, float scale) {
  float *x = malloc(n * sizeof(float));
  if (!x) abort();
  fill_uniform(x, n, st, scale);
  return x;
}

// ---- linear ----
typedef struct {
  float *out, *in, *w, *b, *wout;
  int N, C, OC;
} lin_ctx;
static double lin_loss(void *p) {
  lin_ctx *c = p;
  vqgpt_linear_forward(c->out, c->in, c->w, c->b, c->N, c->C, c->OC);
  return weighted_sum(c->out, c->wout, (size_t)c->N * c->OC);
}

static void test_linear(int N, int C) {
  uint64_t st = 11 + N;
  int OC = 20;
  lin_ctx c = {malloc(sizeof(float) * N * OC),
               alloc_fill((size_t)N * C, &st, 1),
               alloc_fill((size_t)OC * C, &st, 0.5f),
               alloc_fill(OC, &st, 0.5f),
               alloc_fill((size_t)N * OC, &st, 1),
               N,
               C,
               OC};
  float *din = malloc(sizeof(float) * N * C), *dw = calloc((size_t)OC * C, 4), *db = calloc(OC, 4);
  // forward against a naive double loop
  lin_loss(&c);
  double maxd = 0;
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = c.b[o];
      for (int k = 0; k < C; k++) s += (double)c.in[n * C + k] * c.w[o * C + k];
      maxd = fmax(maxd, fabs(s - c.out[n * OC + o]));
    }
  CHECKF(maxd < 1e-5, "linear forward N=%d differs from naive by %g", N, maxd);
  vqgpt_linear_backward(din, dw, db, c.wout, c.in, c.w, N, C, OC);
  CHECKF(fd_check(lin_loss, &c, c.in, din, (size_t)N * C, 64, 1e-2f) < 1e-2, "linear din N=%d", N);
  CHECKF(fd_check(lin_loss, &c, c.w, dw, (size_t)OC * C, 64, 1e-2f) < 1e-2, "linear dweight N=%d",
         N);
  CHECKF(fd_check(lin_loss, &c, c.b, db, OC, 64, 1e-2f) < 1e-2, "linear dbias N=%d", N);
  // parameter gradients accumulate
  float *dw2 = malloc(sizeof(float) * OC * C);
  memcpy(dw2, dw, sizeof(float) * OC * C);
  vqgpt_linear_backward(NULL, dw, db, c.wout, c.in, c.w, N, C, OC);
  double acc = 0;
  for (int i = 0; i < OC * C; i++) acc = fmax(acc, fabs(dw[i] - 2 * dw2[i]));
  CHECKF(acc < 1e-4, "linear dweight does not accumulate (%g)", acc);
  free(c.out), free(c.in), free(c.w), free(c.b), free(c.wout), free(din), free(dw), free(db),
      free(dw2);
}

// ---- layernorm ----
typedef struct {
  float *out, *mean, *rstd, *in, *w, *b, *wout;
  int N, C;
} ln_ctx;
static double ln_loss(void *p) {
  ln_ctx *c = p;
  vqgpt_layernorm_forward(c->out, c->mean, c->rstd, c->in, c->w, c->b, c->N, c->C, 1e-5f);
  return weighted_sum(c->out, c->wout, (size_t)c->N * c->C);
}

static void test_layernorm(void) {
  uint64_t st = 5;
  int N = 7, C = 40;
  size_t n = (size_t)N * C;
  ln_ctx c = {malloc(n * 4),
              malloc(N * 4),
              malloc(N * 4),
              alloc_fill(n, &st, 2),
              alloc_fill(C, &st, 1),
              alloc_fill(C, &st, 1),
              alloc_fill(n, &st, 1),
              N,
              C};
  for (size_t i = 0; i < n; i++) c.in[i] += 0.5f;  // non-zero mean
  ln_loss(&c);
  // each row has zero mean and unit variance before the affine map
  double worst = 0;
  for (int r = 0; r < N; r++) {
    double s = 0, s2 = 0;
    for (int k = 0; k < C; k++) {
      double z = (c.out[r * C + k] - c.b[k]) / c.w[k];
      s += z;
      s2 += z * z;
    }
    worst = fmax(worst, fmax(fabs(s / C), fabs(s2 / C - 1)));
  }
  CHECKF(worst < 1e-3, "layernorm output not normalized (%g)", worst);
  float *din = malloc(n * 4), *dw = calloc(C, 4), *db = calloc(C, 4);
  for (size_t i = 0; i < n; i++) din[i] = 0.25f;  // += semantics: a known starting value
  vqgpt_layernorm_backward(din, dw, db, c.wout, c.in, c.mean, c.rstd, c.w, N, C);
  for (size_t i = 0; i < n; i++) din[i] -= 0.25f;
  CHECKF(fd_check(ln_loss, &c, c.in, din, n, 80, 1e-2f) < 2e-2, "layernorm din");
  CHECKF(fd_check(ln_loss, &c, c.w, dw, C, 40, 1e-2f) < 1e-2, "layernorm dweight");
  CHECKF(fd_check(ln_loss, &c, c.b, db, C, 40, 1e-2f) < 1e-2, "layernorm dbias");
  free(c.out), free(c.mean), free(c.rstd), free(c.in), free(c.w), free(c.b), free(c.wout);
  free(din), free(dw), free(db);
}

// ---- gelu ----
typedef struct {
  float *out, *in, *wout;
  size_t n;
} gelu_ctx;
static double gelu_loss(void *p) {
  gelu_ctx *c = p;
  vqgpt_gelu_forward(c->out, c->in, c->n);
  return weighted_sum(c->out, c->wout, c->n);
}

// The rational erf against double-precision erf, and the forward against the erf form.
static void test_gelu_accuracy(void) {
  double worst = 0, worst_gelu = 0;
  for (int i = -60000; i <= 60000; i++) {
    double x = i * 1e-4;
    worst = fmax(worst, fabs(vqgpt_gelu_erf((float)x) - erf(x)));
  }
  float in[1001], out[1001];
  for (int i = 0; i <= 1000; i++) in[i] = (float)(i - 500) * 0.02f;  // [-10, 10]
  vqgpt_gelu_forward(out, in, 1001);
  for (int i = 0; i <= 1000; i++) {
    double x = in[i], ref = 0.5 * x * (1 + erf(x / sqrt(2.0)));
    worst_gelu = fmax(worst_gelu, fabs(out[i] - ref) / fmax(fabs(x), 1.0));
  }
  CHECKF(worst < 4e-7, "erf: largest error %.3g", worst);
  CHECKF(worst_gelu < 4e-7, "gelu: largest error %.3g (relative to max(|x|, 1))", worst_gelu);
}

static void test_gelu(void) {
  uint64_t st = 9;
  size_t n = 300;
  gelu_ctx c = {malloc(n * 4), alloc_fill(n, &st, 4), alloc_fill(n, &st, 1), n};
  gelu_loss(&c);
  // exact erf form, not the tanh approximation: at x = 1, 0.5 (1 + erf(1/sqrt 2)) = 0.841345
  float x1 = 1.0f, y1, xm = -3.0f, ym;
  vqgpt_gelu_forward(&y1, &x1, 1);
  vqgpt_gelu_forward(&ym, &xm, 1);
  CHECKF(fabsf(y1 - 0.8413447f) < 1e-6f, "gelu(1) = %.8f", y1);
  CHECKF(fabsf(ym - (-0.0040496886f)) < 1e-7f, "gelu(-3) = %.9f", ym);
  float *din = malloc(n * 4);
  vqgpt_gelu_backward(din, c.wout, c.in, n);
  CHECKF(fd_check(gelu_loss, &c, c.in, din, n, 300, 1e-3f) < 1e-2, "gelu din");
  // in-place backward
  float *d2 = malloc(n * 4);
  memcpy(d2, c.wout, n * 4);
  vqgpt_gelu_backward(d2, d2, c.in, n);
  CHECK(memcmp(d2, din, n * 4) == 0);
  free(c.out), free(c.in), free(c.wout), free(din), free(d2);
}

// ---- causal attention ----
typedef struct {
  float *out, *att, *qkv, *wout, *scratch;
  int B, T, C, H;
  float pdrop;
  uint64_t seed;
} att_ctx;
static double att_loss(void *p) {
  att_ctx *c = p;
  vqgpt_causal_attention_forward(c->out, c->att, c->qkv, c->B, c->T, c->C, c->H, c->pdrop, c->seed,
                                 0, c->scratch);
  return weighted_sum(c->out, c->wout, (size_t)c->B * c->T * c->C);
}

static void test_attention(float pdrop) {
  uint64_t st = 21;
  int B = 2, T = 6, C = 16, H = 4, hs = C / H;
  size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = (size_t)B * H * T * T;
  att_ctx c = {malloc(no * 4),
               malloc(na * 4),
               alloc_fill(nq, &st, 1),
               alloc_fill(no, &st, 1),
               malloc(na * 4),
               B,
               T,
               C,
               H,
               pdrop,
               1234};
  att_loss(&c);
  if (pdrop == 0) {
    // naive reference for (b=1, head 2, query 4)
    int b = 1, h = 2, i = 4;
    double s[6], mx = -1e30, sum = 0;
    for (int j = 0; j <= i; j++) {
      double d = 0;
      for (int k = 0; k < hs; k++)
        d += (double)c.qkv[((size_t)b * T + i) * 3 * C + h * hs + k] *
             c.qkv[((size_t)b * T + j) * 3 * C + C + h * hs + k];
      s[j] = d / sqrt(hs);
      mx = fmax(mx, s[j]);
    }
    for (int j = 0; j <= i; j++) sum += (s[j] = exp(s[j] - mx));
    double worst = 0;
    for (int k = 0; k < hs; k++) {
      double y = 0;
      for (int j = 0; j <= i; j++)
        y += s[j] / sum * c.qkv[((size_t)b * T + j) * 3 * C + 2 * C + h * hs + k];
      worst = fmax(worst, fabs(y - c.out[((size_t)b * T + i) * C + h * hs + k]));
    }
    CHECKF(worst < 1e-5, "attention forward differs from naive by %g", worst);
    // causality: the first query attends only to itself
    CHECK(c.att[0] == 1.0f && c.att[1] == 0.0f);
  }
  float *dqkv = malloc(nq * 4), *scratch = malloc(na * 4);
  vqgpt_causal_attention_backward(dqkv, c.wout, c.qkv, c.att, B, T, C, H, pdrop, c.seed, 0,
                                  scratch);
  double e = fd_check(att_loss, &c, c.qkv, dqkv, nq, 200, 1e-2f);
  CHECKF(e < 1e-2, "attention dqkv (pdrop %g): %g", pdrop, e);
  free(c.out), free(c.att), free(c.qkv), free(c.wout), free(c.scratch), free(dqkv), free(scratch);
}

// Queries appended to a key/value cache reproduce the rows of the full causal forward: one new
// query (the KV-cache step, for the unrolled head size 64 and others) and several (a prefix
// extended by n rows).
static void test_attention_extend(int hs, int n) {
  uint64_t st = 31;
  int B = 3, T = 5, H = 3, C = H * hs, start = T - n;
  size_t nq = (size_t)B * T * 3 * C;
  float *qkv = alloc_fill(nq, &st, 1), *out = malloc(sizeof(float) * B * T * C),
        *att = malloc(sizeof(float) * B * H * T * T);
  vqgpt_causal_attention_forward(out, att, qkv, B, T, C, H, 0, 0, 0, NULL);
  float *kc = malloc(sizeof(float) * T * hs), *vc = malloc(sizeof(float) * T * hs),
        *y = malloc(sizeof(float) * B * T * C), *scr = malloc(sizeof(float) * n * T);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      for (int t = 0; t < T; t++) {  // this (sequence, head)'s cache: (T, hs) contiguous
        memcpy(kc + (size_t)t * hs, qkv + ((size_t)b * T + t) * 3 * C + C + h * hs, hs * 4);
        memcpy(vc + (size_t)t * hs, qkv + ((size_t)b * T + t) * 3 * C + 2 * C + h * hs, hs * 4);
      }
      size_t first = (size_t)b * T + start;
      vqgpt_causal_attention_extend(y + first * C + h * hs, C, qkv + first * 3 * C + h * hs, 3 * C,
                                    kc, vc, start, n, hs, scr);
    }
  double worst = 0;
  for (int b = 0; b < B; b++)
    for (int t = start; t < T; t++)
      for (int k = 0; k < C; k++) {
        size_t at = ((size_t)b * T + t) * C + k;
        worst = fmax(worst, fabs(y[at] - out[at]));
      }
  CHECKF(worst < 1e-5, "attention extend (hs %d, %d new) differs from full forward by %g", hs, n,
         worst);
  free(qkv), free(out), free(att), free(kc), free(vc), free(y), free(scr);
}

// ---- softmax cross-entropy ----
typedef struct {
  float *probs, *losses, *logits;
  int32_t *targets;
  int N, V, nv;
} ce_ctx;
static double ce_loss(void *p) {
  ce_ctx *c = p;
  return vqgpt_softmax_ce_forward(c->probs, c->losses, c->logits, c->targets, c->N, c->V, &c->nv);
}

static void test_softmax_ce(void) {
  uint64_t st = 41;
  int N = 6, V = 11;
  int32_t targets[6] = {3, -1, 0, 10, 5, -1};
  ce_ctx c = {malloc(sizeof(float) * N * V),
              malloc(sizeof(float) * N),
              alloc_fill((size_t)N * V, &st, 3),
              targets,
              N,
              V,
              0};
  double loss = ce_loss(&c);
  CHECK(c.nv == 4);
  double ref = 0;
  for (int n = 0; n < N; n++) {
    if (targets[n] < 0) continue;
    double s = 0;
    for (int v = 0; v < V; v++) s += exp(c.logits[n * V + v]);
    ref += log(s) - c.logits[n * V + targets[n]];
  }
  ref /= 4;
  CHECKF(fabs(loss - ref) < 1e-5, "softmax-ce loss %g vs %g", loss, ref);
  float *d = malloc(sizeof(float) * N * V);
  vqgpt_softmax_ce_backward(d, c.probs, targets, N, V, c.nv, 1.0f);
  CHECKF(fd_check(ce_loss, &c, c.logits, d, (size_t)N * V, 66, 1e-2f) < 1e-2, "softmax-ce dlogits");
  for (int v = 0; v < V; v++) CHECK(d[1 * V + v] == 0.0f);  // ignored row
  // in place: probs aliasing logits
  float *x = malloc(sizeof(float) * N * V);
  memcpy(x, c.logits, sizeof(float) * N * V);
  int nv2;
  double l2 = vqgpt_softmax_ce_forward(x, c.losses, x, targets, N, V, &nv2);
  CHECK(l2 == loss);
  free(c.probs), free(c.losses), free(c.logits), free(d), free(x);
}

// ---- dropout ----
typedef struct {
  float *out, *in, *wout;
  size_t n;
} drop_ctx;
static double drop_loss(void *p) {
  drop_ctx *c = p;
  vqgpt_dropout_forward(c->out, c->in, c->n, 0.3f, 77, 0);
  return weighted_sum(c->out, c->wout, c->n);
}

static void test_dropout(void) {
  uint64_t st = 51;
  size_t n = 20000;
  drop_ctx c = {malloc(n * 4), alloc_fill(n, &st, 1), alloc_fill(n, &st, 1), n};
  drop_loss(&c);
  size_t zeros = 0;
  for (size_t i = 0; i < n; i++) zeros += c.out[i] == 0.0f;
  CHECKF(fabs((double)zeros / n - 0.3) < 0.02, "dropout rate %g", (double)zeros / n);
  float *din = malloc(n * 4);
  vqgpt_dropout_backward(din, c.wout, n, 0.3f, 77, 0);
  CHECKF(fd_check(drop_loss, &c, c.in, din, n, 100, 1e-2f) < 1e-3, "dropout din");
  free(c.out), free(c.in), free(c.wout), free(din);
}

// ---- AdamW ----
static void test_adamw(void) {
  // Two steps of torch.optim.AdamW(lr=0.1, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01)
  // on p = [1, -2], grads [0.5, -0.25] then [0.1, 0.3], evaluated by hand in double.
  float p[2] = {1, -2}, m[2] = {0}, v[2] = {0};
  float g1[2] = {0.5f, -0.25f}, g2[2] = {0.1f, 0.3f};
  double P[2] = {1, -2}, M[2] = {0}, Vv[2] = {0};
  const double *G[2] = {(double[]){0.5, -0.25}, (double[]){0.1, 0.3}};
  for (int t = 1; t <= 2; t++) {
    vqgpt_adamw_update(p, t == 1 ? g1 : g2, m, v, 2, 0.1f, 0.9f, 0.95f, 1e-8f, 0.01f, t);
    for (int i = 0; i < 2; i++) {
      P[i] *= 1 - 0.1 * 0.01;
      M[i] = 0.9 * M[i] + 0.1 * G[t - 1][i];
      Vv[i] = 0.95 * Vv[i] + 0.05 * G[t - 1][i] * G[t - 1][i];
      double mh = M[i] / (1 - pow(0.9, t)), vh = Vv[i] / (1 - pow(0.95, t));
      P[i] -= 0.1 * mh / (sqrt(vh) + 1e-8);
    }
  }
  CHECKF(fabs(p[0] - P[0]) < 1e-6 && fabs(p[1] - P[1]) < 1e-6, "adamw %g %g vs %g %g", p[0], p[1],
         P[0], P[1]);
  // A longer vector exercises the vectorized path (8 at a time) and its scalar tail.
  enum { NL = 37 };
  float pl[NL], ml[NL], vl[NL], gl[NL];
  double Pl[NL], Ml[NL], Vl[NL];
  uint64_t st = 61;
  fill_uniform(pl, NL, &st, 1);
  fill_uniform(ml, NL, &st, 0.1f);
  fill_uniform(gl, NL, &st, 1);
  for (int i = 0; i < NL; i++) {
    vl[i] = 0.01f * (float)(i + 1);
    Pl[i] = pl[i], Ml[i] = ml[i], Vl[i] = vl[i];
  }
  vqgpt_adamw_update(pl, gl, ml, vl, NL, 0.01f, 0.9f, 0.95f, 1e-8f, 0.1f, 5);
  double worst = 0;
  for (int i = 0; i < NL; i++) {
    Pl[i] *= 1 - 0.01 * 0.1;
    Ml[i] = 0.9 * Ml[i] + 0.1 * gl[i];
    Vl[i] = 0.95 * Vl[i] + 0.05 * (double)gl[i] * gl[i];
    Pl[i] -= 0.01 / (1 - pow(0.9, 5)) * Ml[i] / (sqrt(Vl[i] / (1 - pow(0.95, 5))) + 1e-8);
    worst = fmax(worst, fabs(Pl[i] - pl[i]) + fabs(Ml[i] - ml[i]) + fabs(Vl[i] - vl[i]));
  }
  CHECKF(worst < 1e-6, "adamw on 37 values: %g", worst);
  float g[3] = {3, 4, 0};
  double norm = vqgpt_adamw_global_norm(g, 3);
  CHECK(fabs(norm - 5) < 1e-12);
  float f = vqgpt_adamw_clip(g, 3, norm, 1.0);
  CHECK(fabsf(g[0] - 0.6f) < 1e-6f && fabsf(g[1] - 0.8f) < 1e-6f && fabsf(f - 0.2f) < 1e-6f);
  CHECK(vqgpt_adamw_clip(g, 3, 1.0, 2.0) == 1.0f);
}

// ---- RNG ----
static void test_rng(void) {
  uint64_t a = 42, b = 42;
  CHECK(vqgpt_rng_next(&a) == vqgpt_rng_next(&b));
  int32_t perm[100];
  vqgpt_rng_permutation(&a, perm, 100);
  int seen[100] = {0}, fixed = 0;
  for (int i = 0; i < 100; i++) {
    CHECK(perm[i] >= 0 && perm[i] < 100);
    if (perm[i] >= 0 && perm[i] < 100) seen[perm[i]]++;
    fixed += perm[i] == i;
  }
  for (int i = 0; i < 100; i++) CHECK(seen[i] == 1);
  CHECK(fixed < 10);
  double s = 0, s2 = 0;
  int n = 20000, counts[7] = {0}, bad_uniform = 0;
  for (int i = 0; i < n; i++) {
    double x = vqgpt_rng_normal(&a);
    s += x;
    s2 += x * x;
    counts[vqgpt_rng_below(&a, 7)]++;
    float u = vqgpt_rng_uniform(&a);
    bad_uniform += !(u >= 0.0f && u < 1.0f);
  }
  CHECK(bad_uniform == 0);
  CHECKF(fabs(s / n) < 0.03 && fabs(s2 / n - 1) < 0.05, "normal moments %g %g", s / n, s2 / n);
  for (int k = 0; k < 7; k++)
    CHECKF(abs(counts[k] - n / 7) < 300, "vqgpt_rng_below bucket %d: %d", k, counts[k]);
  CHECK(vqgpt_rng_hash(1, 2) == vqgpt_rng_hash(1, 2) &&
        vqgpt_rng_hash(1, 2) != vqgpt_rng_hash(1, 3) &&
        vqgpt_rng_hash(1, 2) != vqgpt_rng_hash(2, 2));
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  test_linear(5, 24);   // row kernel: a block of 4 inputs and one single
  test_linear(13, 21);  // row kernel: 8 + 4 + 1 inputs, a row length with a scalar tail
  test_linear(37, 24);  // sgemm
  test_layernorm();
  test_gelu_accuracy();
  test_gelu();
  test_attention(0.0f);
  test_attention(0.25f);
  test_attention_extend(64, 1);
  test_attention_extend(8, 1);
  test_attention_extend(7, 1);
  test_attention_extend(64, 3);
  test_attention_extend(7, 5);
  test_softmax_ce();
  test_dropout();
  test_adamw();
  test_rng();
  return test_finish("test_gpt_kernels");
}
