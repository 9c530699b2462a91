// GroupNorm forward against a double-precision reference, backward against the exact
// double gradient and central finite differences.
#include "core/groupnorm.h"

#include "core/blas.h"
#include "test_util.h"

// Double forward; also the exact gradients of sum(out * g).
static void naive(double *out, double *mean, double *rstd, double *din, double *dgamma,
                  double *dbeta, const float *in, const float *gamma, const float *beta,
                  const float *g, int B, int C, int HW, int G, double eps) {
  int cpg = C / G;
  size_t n = (size_t)cpg * HW;
  for (int c = 0; c < C; c++) dgamma[c] = dbeta[c] = 0;
  for (int b = 0; b < B; b++)
    for (int gi = 0; gi < G; gi++) {
      size_t off = ((size_t)b * C + (size_t)gi * cpg) * HW;
      double m = 0, v = 0;
      for (size_t i = 0; i < n; i++) m += in[off + i];
      m /= n;
      for (size_t i = 0; i < n; i++) v += (in[off + i] - m) * (in[off + i] - m);
      v /= n;
      double r = 1.0 / sqrt(v + eps);
      mean[b * G + gi] = m;
      rstd[b * G + gi] = r;
      double s1 = 0, s2 = 0;  // sum(dxhat), sum(dxhat * xhat)
      for (size_t i = 0; i < n; i++) {
        int c = gi * cpg + (int)(i / HW);
        double xh = (in[off + i] - m) * r;
        out[off + i] = xh * gamma[c] + beta[c];
        double dxh = g[off + i] * gamma[c];
        s1 += dxh;
        s2 += dxh * xh;
        dgamma[c] += g[off + i] * xh;
        dbeta[c] += g[off + i];
      }
      for (size_t i = 0; i < n; i++) {
        int c = gi * cpg + (int)(i / HW);
        double xh = (in[off + i] - m) * r;
        din[off + i] = r * (g[off + i] * gamma[c] - s1 / n - xh * s2 / n);
      }
    }
}

typedef struct {
  int B, C, HW, G;
  float eps;
  float *in, *gamma, *beta, *g, *out, *mean, *rstd;
} loss_ctx;

static double gn_loss(void *p) {
  loss_ctx *l = p;
  vqgpt_groupnorm_forward(l->out, l->mean, l->rstd, l->in, l->gamma, l->beta, l->B, l->C, l->HW,
                          l->G, l->eps);
  size_t n = (size_t)l->B * l->C * l->HW;
  double acc = 0;
  for (size_t i = 0; i < n; i++) acc += (double)l->out[i] * l->g[i];
  return acc;
}

static void run_case(const char *name, int B, int C, int H, int W, int G, float eps, float offset,
                     int fd, uint64_t *rng) {
  int HW = H * W;
  size_t n = (size_t)B * C * HW;
  float *in = alloc_f(n), *g = alloc_f(n), *out = alloc_f(n), *din = alloc_f(n);
  float *gamma = alloc_f(C), *beta = alloc_f(C), *dgamma = alloc_f(C), *dbeta = alloc_f(C);
  float *mean = alloc_f((size_t)B * G), *rstd = alloc_f((size_t)B * G);
  double *rout = malloc(n * sizeof *rout), *rdin = malloc(n * sizeof *rdin);
  double *rmean = malloc((size_t)B * G * sizeof *rmean),
         *rrstd = malloc((size_t)B * G * sizeof *rrstd);
  double *rdg = malloc(C * sizeof *rdg), *rdb = malloc(C * sizeof *rdb);
  fill_uniform(in, n, rng, 2.0f);
  // A channel-dependent scale and an offset: groups with |mean| >> std test the variance.
  for (size_t i = 0; i < n; i++) in[i] = in[i] * (1.0f + (float)((i / HW) % 3)) + offset;
  fill_uniform(g, n, rng, 1.0f);
  fill_uniform(gamma, C, rng, 1.0f);
  fill_uniform(beta, C, rng, 1.0f);
  naive(rout, rmean, rrstd, rdin, rdg, rdb, in, gamma, beta, g, B, C, HW, G, eps);

  vqgpt_groupnorm_forward(out, mean, rstd, in, gamma, beta, B, C, HW, G, eps);
  double e = rel_err_d(out, rout, n);
  CHECKF(e < 1e-5, "%s forward: relative error %.3g", name, e);
  CHECKF(rel_err_d(mean, rmean, (size_t)B * G) < 1e-5, "%s mean", name);
  CHECKF(rel_err_d(rstd, rrstd, (size_t)B * G) < 1e-5, "%s rstd", name);

  for (size_t i = 0; i < n; i++) din[i] = 1e6f;
  for (int c = 0; c < C; c++) dgamma[c] = dbeta[c] = 0;
  vqgpt_groupnorm_backward(din, dgamma, dbeta, g, in, mean, rstd, gamma, B, C, HW, G);
  double ei = rel_err_d(din, rdin, n), eg = rel_err_d(dgamma, rdg, C),
         eb = rel_err_d(dbeta, rdb, C);
  CHECKF(ei < 1e-4, "%s din: relative error %.3g", name, ei);
  CHECKF(eg < 1e-5, "%s dgamma: relative error %.3g", name, eg);
  CHECKF(eb < 1e-5, "%s dbeta: relative error %.3g", name, eb);
  vqgpt_groupnorm_backward(din, dgamma, dbeta, g, in, mean, rstd, gamma, B, C, HW, G);
  for (int c = 0; c < C; c++) rdg[c] *= 2, rdb[c] *= 2;
  CHECKF(rel_err_d(din, rdin, n) < 1e-4, "%s din does not overwrite", name);
  CHECKF(rel_err_d(dgamma, rdg, C) < 1e-5, "%s dgamma does not accumulate", name);
  CHECKF(rel_err_d(dbeta, rdb, C) < 1e-5, "%s dbeta does not accumulate", name);

  // In place forward.
  float *copy = alloc_f(n);
  memcpy(copy, in, n * sizeof *copy);
  vqgpt_groupnorm_forward(copy, mean, rstd, copy, gamma, beta, B, C, HW, G, eps);
  CHECKF(rel_err_d(copy, rout, n) < 1e-5, "%s in-place forward", name);
  free(copy);

  if (fd) {
    for (int c = 0; c < C; c++) dgamma[c] = dbeta[c] = 0;
    vqgpt_groupnorm_backward(din, dgamma, dbeta, g, in, mean, rstd, gamma, B, C, HW, G);
    loss_ctx l = {B, C, HW, G, eps, in, gamma, beta, g, out, mean, rstd};
    double fi = fd_check(gn_loss, &l, in, din, n, 97, 1e-2f);
    double fg = fd_check(gn_loss, &l, gamma, dgamma, C, 97, 1e-2f);
    double fb = fd_check(gn_loss, &l, beta, dbeta, C, 97, 1e-2f);
    CHECKF(fi < 1e-3, "%s din vs finite differences: %.3g", name, fi);
    CHECKF(fg < 1e-3, "%s dgamma vs finite differences: %.3g", name, fg);
    CHECKF(fb < 1e-3, "%s dbeta vs finite differences: %.3g", name, fb);
  }
  free(in), free(g), free(out), free(din), free(gamma), free(beta), free(dgamma), free(dbeta);
  free(mean), free(rstd), free(rout), free(rdin), free(rmean), free(rrstd), free(rdg), free(rdb);
}

static double swish_d(double v) { return v / (1.0 + exp(-v)); }

typedef struct {
  int B, C, HW, G;
  float *in, *gamma, *beta, *g, *normed, *act, *mean, *rstd;
} fused_ctx;

static double fused_loss(void *p) {
  fused_ctx *l = p;
  vqgpt_groupnorm_swish_forward(l->normed, l->act, l->mean, l->rstd, l->in, l->gamma, l->beta, l->B,
                                l->C, l->HW, l->G, 1e-6f);
  size_t n = (size_t)l->B * l->C * l->HW;
  double acc = 0;
  for (size_t i = 0; i < n; i++) acc += (double)l->act[i] * l->g[i];
  return acc;
}

// The fused GroupNorm + swish against the double reference (forward) and against the
// separate kernels and finite differences (backward).
static void run_fused(const char *name, int B, int C, int HW, int G, int fd, uint64_t *rng) {
  size_t n = (size_t)B * C * HW;
  float *in = alloc_f(n), *g = alloc_f(n), *normed = alloc_f(n), *act = alloc_f(n);
  float *din = alloc_f(n), *tmp = alloc_f(n), *rdin = alloc_f(n);
  float *gamma = alloc_f(C), *beta = alloc_f(C), *dgamma = alloc_f(C), *dbeta = alloc_f(C);
  float *rdg = alloc_f(C), *rdb = alloc_f(C);
  float *mean = alloc_f((size_t)B * G), *rstd = alloc_f((size_t)B * G);
  double *rout = malloc(n * sizeof *rout), *ract = malloc(n * sizeof *ract),
         *scr = malloc(n * sizeof *scr);
  double *dm = malloc((size_t)B * G * sizeof *dm), *dr = malloc((size_t)B * G * sizeof *dr);
  double *dg = malloc(C * sizeof *dg), *db = malloc(C * sizeof *db);
  fill_uniform(in, n, rng, 3.0f);
  fill_uniform(g, n, rng, 1.0f);
  fill_uniform(gamma, C, rng, 2.0f);
  fill_uniform(beta, C, rng, 1.0f);
  naive(rout, dm, dr, scr, dg, db, in, gamma, beta, g, B, C, HW, G, 1e-6);
  for (size_t i = 0; i < n; i++) ract[i] = swish_d(rout[i]);
  vqgpt_groupnorm_swish_forward(normed, act, mean, rstd, in, gamma, beta, B, C, HW, G, 1e-6f);
  CHECKF(rel_err_d(normed, rout, n) < 1e-5, "%s fused forward normed", name);
  CHECKF(rel_err_d(act, ract, n) < 1e-5, "%s fused forward swish", name);
  double e_mean = rel_err_d(mean, dm, (size_t)B * G);
  CHECKF(e_mean < 1e-5, "%s fused mean: relative error %.3g", name, e_mean);

  // Reference: vqgpt_swish_backward's formula into a temporary, then vqgpt_groupnorm_backward.
  for (size_t i = 0; i < n; i++) {
    float v = normed[i], sg = 1.0f / (1.0f + expf(-v));
    tmp[i] = g[i] * sg * (1.0f + v * (1.0f - sg));
  }
  for (int c = 0; c < C; c++) rdg[c] = rdb[c] = dgamma[c] = dbeta[c] = 0.5f;
  vqgpt_groupnorm_backward(rdin, rdg, rdb, tmp, in, mean, rstd, gamma, B, C, HW, G);
  for (size_t i = 0; i < n; i++) din[i] = 1e6f;
  vqgpt_groupnorm_swish_backward(din, dgamma, dbeta, g, normed, in, mean, rstd, gamma, B, C, HW, G);
  CHECKF(rel_err(din, rdin, n) < 1e-5, "%s fused din: %.3g", name, rel_err(din, rdin, n));
  CHECKF(rel_err(dgamma, rdg, C) < 1e-5, "%s fused dgamma accumulates", name);
  CHECKF(rel_err(dbeta, rdb, C) < 1e-5, "%s fused dbeta accumulates", name);
  // din may alias dout.
  memcpy(tmp, g, n * sizeof *tmp);
  vqgpt_groupnorm_swish_backward(tmp, dgamma, dbeta, tmp, normed, in, mean, rstd, gamma, B, C, HW,
                                 G);
  CHECKF(rel_err(tmp, rdin, n) < 1e-5, "%s fused din in place", name);
  if (fd) {
    for (int c = 0; c < C; c++) dgamma[c] = dbeta[c] = 0;
    vqgpt_groupnorm_swish_backward(din, dgamma, dbeta, g, normed, in, mean, rstd, gamma, B, C, HW,
                                   G);
    fused_ctx l = {B, C, HW, G, in, gamma, beta, g, normed, act, mean, rstd};
    double fi = fd_check(fused_loss, &l, in, din, n, 97, 1e-2f);
    double fg = fd_check(fused_loss, &l, gamma, dgamma, C, 97, 1e-2f);
    double fb = fd_check(fused_loss, &l, beta, dbeta, C, 97, 1e-2f);
    CHECKF(fi < 1e-3, "%s fused din vs finite differences: %.3g", name, fi);
    CHECKF(fg < 1e-3, "%s fused dgamma vs finite differences: %.3g", name, fg);
    CHECKF(fb < 1e-3, "%s fused dbeta vs finite differences: %.3g", name, fb);
  }
  free(in), free(g), free(normed), free(act), free(din), free(tmp), free(rdin), free(gamma);
  free(beta), free(dgamma), free(dbeta), free(rdg), free(rdb), free(mean), free(rstd);
  free(rout), free(ract), free(scr), free(dm), free(dr), free(dg), free(db);
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  uint64_t rng = 777;
  run_case("32 groups, 64 ch, 5x7, B=2", 2, 64, 5, 7, 32, 1e-6f, 0.0f, 1, &rng);
  run_case("4 groups, 12 ch, 3x2, B=3", 3, 12, 3, 2, 4, 1e-5f, 0.5f, 1, &rng);
  run_case("1 group, HW=1", 2, 6, 1, 1, 1, 1e-6f, 0.0f, 1, &rng);
  run_case("large mean", 1, 64, 9, 11, 32, 1e-6f, 300.0f, 0, &rng);
  run_case("32 groups, 128 ch, 64x48", 2, 128, 64, 48, 32, 1e-6f, -0.25f, 0, &rng);
  run_fused("fused, 32 groups, 64 ch, 5x7, B=2", 2, 64, 35, 32, 1, &rng);
  run_fused("fused, 4 groups, 12 ch, 3x2, B=3", 3, 12, 6, 4, 1, &rng);
  run_fused("fused, 32 groups, 128 ch, 32x24", 2, 128, 768, 32, 0, &rng);
  return test_finish("test_groupnorm");
}
