// Spatial attention core against a double-precision reference (softmax over keys of
// q^T k / sqrt(C), out = v probs^T); backward against exact double gradients and central
// finite differences.
#include "core/attention2d.h"

#include "core/blas.h"
#include "test_util.h"

// Forward and the exact gradients of sum(out * g), all in double.
static void naive(double *out, double *probs, double *dq, double *dk, double *dv, const float *q,
                  const float *k, const float *v, const float *g, int B, int C, int N) {
  double scale = 1.0 / sqrt((double)C);
  double *dp = malloc((size_t)N * sizeof *dp);
  for (int b = 0; b < B; b++) {
    const float *qb = q + (size_t)b * C * N, *kb = k + (size_t)b * C * N,
                *vb = v + (size_t)b * C * N;
    const float *gb = g + (size_t)b * C * N;
    double *pb = probs + (size_t)b * N * N;
    for (size_t i = 0; i < (size_t)C * N; i++)
      dq[b * C * N + i] = dk[b * C * N + i] = dv[b * C * N + i] = 0;
    for (int i = 0; i < N; i++) {
      double mx = -INFINITY, sum = 0;
      for (int j = 0; j < N; j++) {
        double s = 0;
        for (int c = 0; c < C; c++) s += (double)qb[c * N + i] * kb[c * N + j];
        pb[i * N + j] = s * scale;
        if (s * scale > mx) mx = s * scale;
      }
      for (int j = 0; j < N; j++) sum += pb[i * N + j] = exp(pb[i * N + j] - mx);
      for (int j = 0; j < N; j++) pb[i * N + j] /= sum;
      for (int c = 0; c < C; c++) {
        double o = 0;
        for (int j = 0; j < N; j++) o += vb[c * N + j] * pb[i * N + j];
        out[((size_t)b * C + c) * N + i] = o;
      }
      // Gradients through query row i.
      double dot = 0;
      for (int j = 0; j < N; j++) {
        dp[j] = 0;
        for (int c = 0; c < C; c++) dp[j] += (double)gb[c * N + i] * vb[c * N + j];
        dot += dp[j] * pb[i * N + j];
      }
      for (int j = 0; j < N; j++) {
        double p = pb[i * N + j], ds = p * (dp[j] - dot) * scale;
        for (int c = 0; c < C; c++) {
          dv[((size_t)b * C + c) * N + j] += gb[c * N + i] * p;
          dq[((size_t)b * C + c) * N + i] += ds * kb[c * N + j];
          dk[((size_t)b * C + c) * N + j] += ds * qb[c * N + i];
        }
      }
    }
  }
  free(dp);
}

typedef struct {
  int B, C, N;
  float *q, *k, *v, *g, *out, *probs;
} loss_ctx;

static double attn_loss(void *p) {
  loss_ctx *l = p;
  vqgpt_attn2d_forward(l->out, l->probs, l->q, l->k, l->v, l->B, l->C, l->N);
  size_t n = (size_t)l->B * l->C * l->N;
  double acc = 0;
  for (size_t i = 0; i < n; i++) acc += (double)l->out[i] * l->g[i];
  return acc;
}

static void run(const char *name, int B, int C, int N, float qk_scale, int fd, uint64_t *rng) {
  size_t n = (size_t)B * C * N, nn = (size_t)B * N * N;
  float *q = malloc(n * sizeof *q), *k = malloc(n * sizeof *k), *v = malloc(n * sizeof *v);
  float *g = malloc(n * sizeof *g), *out = malloc(n * sizeof *out),
        *probs = malloc(nn * sizeof *probs);
  float *dq = malloc(n * sizeof *dq), *dk = malloc(n * sizeof *dk), *dv = malloc(n * sizeof *dv);
  float *scratch = malloc(vqgpt_attn2d_scratch_size(N) * sizeof *scratch);
  double *rout = malloc(n * sizeof *rout), *rprobs = malloc(nn * sizeof *rprobs);
  double *rdq = malloc(n * sizeof *rdq), *rdk = malloc(n * sizeof *rdk),
         *rdv = malloc(n * sizeof *rdv);
  fill_uniform(q, n, rng, qk_scale);
  fill_uniform(k, n, rng, qk_scale);
  fill_uniform(v, n, rng, 1.0f);
  fill_uniform(g, n, rng, 1.0f);
  naive(rout, rprobs, rdq, rdk, rdv, q, k, v, g, B, C, N);

  // The row-block form (inference, memory linear in N) first, into `out`'s place.
  float *rows_scratch = malloc(vqgpt_attn2d_rows_scratch_size(N) * sizeof *rows_scratch);
  vqgpt_attn2d_forward_rows(out, rows_scratch, q, k, v, B, C, N);
  double er = rel_err_d(out, rout, n);
  CHECKF(er < 1e-5, "%s row-block forward: relative error %.3g", name, er);
  free(rows_scratch);

  vqgpt_attn2d_forward(out, probs, q, k, v, B, C, N);
  double e = rel_err_d(out, rout, n), ep = rel_err_d(probs, rprobs, nn);
  CHECKF(e < 1e-5, "%s forward: relative error %.3g", name, e);
  CHECKF(ep < 1e-5, "%s probs: relative error %.3g", name, ep);

  for (size_t i = 0; i < n; i++) dq[i] = dk[i] = dv[i] = 1e6f;  // must be overwritten
  vqgpt_attn2d_backward(dq, dk, dv, g, q, k, v, probs, B, C, N, scratch);
  double eq = rel_err_d(dq, rdq, n), ek = rel_err_d(dk, rdk, n), ev = rel_err_d(dv, rdv, n);
  CHECKF(eq < 1e-4, "%s dq: relative error %.3g", name, eq);
  CHECKF(ek < 1e-4, "%s dk: relative error %.3g", name, ek);
  CHECKF(ev < 1e-5, "%s dv: relative error %.3g", name, ev);

  if (fd) {
    loss_ctx l = {B, C, N, q, k, v, g, out, probs};
    double fq = fd_check(attn_loss, &l, q, dq, n, 97, 1e-2f);
    double fk = fd_check(attn_loss, &l, k, dk, n, 97, 1e-2f);
    double fv = fd_check(attn_loss, &l, v, dv, n, 97, 1e-2f);
    CHECKF(fq < 1e-3, "%s dq vs finite differences: %.3g", name, fq);
    CHECKF(fk < 1e-3, "%s dk vs finite differences: %.3g", name, fk);
    CHECKF(fv < 1e-3, "%s dv vs finite differences: %.3g", name, fv);
  }
  free(q), free(k), free(v), free(g), free(out), free(probs), free(dq), free(dk), free(dv);
  free(scratch), free(rout), free(rprobs), free(rdq), free(rdk), free(rdv);
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  uint64_t rng = 2024;
  run("B=2 C=8 N=12", 2, 8, 12, 1.0f, 1, &rng);
  run("B=1 C=5 N=7", 1, 5, 7, 1.0f, 1, &rng);
  run("B=3 C=3 N=1", 3, 3, 1, 1.0f, 1, &rng);
  // Scores of several hundred: a softmax without max-subtraction overflows.
  run("large scores", 1, 16, 20, 12.0f, 0, &rng);
  run("16x16 map, C=64, B=2", 2, 64, 256, 1.0f, 0, &rng);
  // Row blocks that do not divide N (256 + 44).
  run("N=300, C=16, B=2", 2, 16, 300, 1.0f, 0, &rng);
  return test_finish("test_attention2d");
}
