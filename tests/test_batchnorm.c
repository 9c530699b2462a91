// BatchNorm2d: train-mode statistics and running-stat update against a double-precision
// recomputation, eval mode, and every gradient against finite differences.
#include "core/batchnorm.h"
#include "core/blas.h"
#include "test_util.h"

enum { B = 3, C = 5, HW = 7 * 6, N = B * C * HW };

typedef struct {
  float *x, *gamma, *beta, *w;  // w: (B, C, HW) weights of the scalar loss sum(w * out)
  float out[N], mean[C], rstd[C];
} bn_ctx;

static double bn_loss(void *p) {
  bn_ctx *c = p;
  vqgpt_batchnorm_forward_train(c->out, c->mean, c->rstd, NULL, NULL, c->x, c->gamma, c->beta, B, C,
                                HW, 1e-5f, 0.1f);
  double s = 0;
  for (size_t i = 0; i < N; i++) s += (double)c->w[i] * c->out[i];
  return s;
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  uint64_t rng = 42;
  static float x[N], w[N], out[N], din[N], xcopy[N];  // (B, C, HW)
  float gamma[C], beta[C], mean[C], rstd[C], rm[C], rv[C], dgamma[C], dbeta[C];
  fill_uniform(x, N, &rng, 2.0f);
  for (size_t i = 0; i < N; i++) x[i] += 3.0f;  // an offset: statistics must not cancel badly
  fill_uniform(w, N, &rng, 1.0f);
  fill_uniform(gamma, C, &rng, 0.5f);
  fill_uniform(beta, C, &rng, 0.5f);
  for (int c = 0; c < C; c++) gamma[c] += 1.0f, rm[c] = 0.1f * c, rv[c] = 1.0f + 0.2f * c;

  // Train forward and running statistics against a double recomputation.
  float rm0[C], rv0[C];
  memcpy(rm0, rm, sizeof rm);
  memcpy(rv0, rv, sizeof rv);
  vqgpt_batchnorm_forward_train(out, mean, rstd, rm, rv, x, gamma, beta, B, C, HW, 1e-5f, 0.1f);
  double max_err = 0, max_stat_err = 0;
  for (int c = 0; c < C; c++) {
    double s = 0, sq = 0;
    for (int b = 0; b < B; b++)
      for (int i = 0; i < HW; i++) s += x[(size_t)(b * C + c) * HW + i];
    const double mu = s / (B * HW);
    for (int b = 0; b < B; b++)
      for (int i = 0; i < HW; i++) {
        const double d = x[(size_t)(b * C + c) * HW + i] - mu;
        sq += d * d;
      }
    const double var = sq / (B * HW), unb = sq / (B * HW - 1);
    for (int b = 0; b < B; b++)
      for (int i = 0; i < HW; i++) {
        const size_t k = (size_t)(b * C + c) * HW + i;
        const double ref = (x[k] - mu) / sqrt(var + 1e-5) * gamma[c] + beta[c];
        if (fabs(ref - out[k]) > max_err) max_err = fabs(ref - out[k]);
      }
    const double erm = fabs(rm[c] - (0.9 * rm0[c] + 0.1 * mu));
    const double erv = fabs(rv[c] - (0.9 * rv0[c] + 0.1 * unb));
    if (erm > max_stat_err) max_stat_err = erm;
    if (erv > max_stat_err) max_stat_err = erv;
    CHECKF(fabs(mean[c] - mu) < 1e-5 && fabs(rstd[c] - 1 / sqrt(var + 1e-5)) < 1e-5,
           "saved statistics of channel %d", c);
  }
  CHECKF(max_err < 1e-5, "train forward error %.3g", max_err);
  CHECKF(max_stat_err < 1e-6, "running statistics error %.3g (unbiased variance expected)",
         max_stat_err);

  // In place gives the same result.
  memcpy(xcopy, x, sizeof x);
  vqgpt_batchnorm_forward_train(xcopy, mean, rstd, NULL, NULL, xcopy, gamma, beta, B, C, HW, 1e-5f,
                                0.1f);
  CHECK(memcmp(xcopy, out, sizeof out) == 0);

  // Eval mode uses the running statistics.
  vqgpt_batchnorm_forward_eval(out, x, gamma, beta, rm, rv, B, C, HW, 1e-5f);
  max_err = 0;
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++)
      for (int i = 0; i < HW; i++) {
        const size_t k = (size_t)(b * C + c) * HW + i;
        const double ref = (x[k] - rm[c]) / sqrt(rv[c] + 1e-5) * gamma[c] + beta[c];
        if (fabs(ref - out[k]) > max_err) max_err = fabs(ref - out[k]);
      }
  CHECKF(max_err < 1e-5, "eval forward error %.3g", max_err);

  // Gradients: din is overwritten, dgamma/dbeta accumulate.
  bn_ctx ctx = {.x = x, .gamma = gamma, .beta = beta, .w = w};
  bn_loss(&ctx);
  for (int c = 0; c < C; c++) dgamma[c] = dbeta[c] = 1.0f;
  for (size_t i = 0; i < N; i++) din[i] = 123.0f;
  vqgpt_batchnorm_backward(din, dgamma, dbeta, w, x, ctx.mean, ctx.rstd, gamma, B, C, HW);
  for (int c = 0; c < C; c++) dgamma[c] -= 1.0f, dbeta[c] -= 1.0f;
  double e = fd_check(bn_loss, &ctx, x, din, N, 200, 1e-2f);
  CHECKF(e < 2e-3, "d/dx finite-difference error %.3g", e);
  e = fd_check(bn_loss, &ctx, gamma, dgamma, C, C, 1e-2f);
  CHECKF(e < 2e-3, "d/dgamma finite-difference error %.3g", e);
  e = fd_check(bn_loss, &ctx, beta, dbeta, C, C, 1e-2f);
  CHECKF(e < 2e-3, "d/dbeta finite-difference error %.3g", e);

  // din may alias dout.
  float dself[N];
  memcpy(dself, w, sizeof w);
  vqgpt_batchnorm_backward(dself, NULL, NULL, dself, x, ctx.mean, ctx.rstd, gamma, B, C, HW);
  CHECK(memcmp(dself, din, sizeof din) == 0);

  // The data-parallel (synchronised) forms on one rank are the functions above, bit for bit.
  static float out_d[N], din_d[N];
  float mean_d[C], rstd_d[C], rm_d[C], rv_d[C], rm_s[C], rv_s[C], dg_d[C], db_d[C], dg_s[C],
      db_s[C];
  for (int c = 0; c < C; c++) rm_d[c] = rm_s[c] = 0.1f * c, rv_d[c] = rv_s[c] = 1.0f + 0.2f * c;
  vqgpt_batchnorm_forward_train(out, mean, rstd, rm_s, rv_s, x, gamma, beta, B, C, HW, 1e-5f, 0.1f);
  CHECK(vqgpt_batchnorm_forward_train_dist(out_d, mean_d, rstd_d, rm_d, rv_d, x, gamma, beta, B, C,
                                           HW, 1e-5f, 0.1f) == 0);
  CHECK(!memcmp(out, out_d, sizeof out) && !memcmp(mean, mean_d, sizeof mean) &&
        !memcmp(rstd, rstd_d, sizeof rstd) && !memcmp(rm_s, rm_d, sizeof rm_s) &&
        !memcmp(rv_s, rv_d, sizeof rv_s));
  vqgpt_batchnorm_update_running(rm_s, rv_s, x, B, C, HW, 0.1f);
  CHECK(vqgpt_batchnorm_update_running_dist(rm_d, rv_d, x, B, C, HW, 0.1f) == 0);
  CHECK(!memcmp(rm_s, rm_d, sizeof rm_s) && !memcmp(rv_s, rv_d, sizeof rv_s));
  for (int c = 0; c < C; c++) dg_d[c] = dg_s[c] = db_d[c] = db_s[c] = 0.5f;
  vqgpt_batchnorm_backward(din, dg_s, db_s, w, x, mean, rstd, gamma, B, C, HW);
  CHECK(vqgpt_batchnorm_backward_dist(din_d, dg_d, db_d, w, x, mean, rstd, gamma, B, C, HW) == 0);
  CHECK(!memcmp(din, din_d, sizeof din) && !memcmp(dg_s, dg_d, sizeof dg_s) &&
        !memcmp(db_s, db_d, sizeof db_s));
  return test_finish("batchnorm");
}
