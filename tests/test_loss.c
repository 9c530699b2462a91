// Stage-1 losses: values on hand-computable inputs and every gradient against finite
// differences.
#include "core/blas.h"
#include "core/loss.h"
#include "test_util.h"

enum { NR = 37, NF = 23 };

typedef struct {
  float *a, *b;
  int which;  // 0 l1, 1 hinge, 2 vanilla, 3 g
} loss_ctx;

static double eval_loss(void *p) {
  loss_ctx *c = p;
  switch (c->which) {
    case 0:
      return vqgpt_loss_l1_mean(NULL, c->a, c->b, NR);
    case 1:
      return vqgpt_loss_d_hinge(NULL, NULL, c->a, NR, c->b, NF);
    case 2:
      return vqgpt_loss_d_vanilla(NULL, NULL, c->a, NR, c->b, NF);
    default:
      return vqgpt_loss_g(NULL, c->b, NF);
  }
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  // Values.
  const float r[2] = {0.5f, 2.0f}, f[2] = {-3.0f, 1.0f};
  CHECK(fabsf(vqgpt_loss_l1_mean(NULL, r, f, 2) - 2.25f) < 1e-6f);
  // hinge: real relu(1-r) = {0.5, 0} mean 0.25; fake relu(1+f) = {0, 2} mean 1 -> 0.625
  CHECK(fabsf(vqgpt_loss_d_hinge(NULL, NULL, r, 2, f, 2) - 0.625f) < 1e-6f);
  double sp =
      0.5 * ((log1p(exp(-0.5)) + log1p(exp(-2.0))) / 2 + (log1p(exp(-3.0)) + log1p(exp(1.0))) / 2);
  CHECK(fabs(vqgpt_loss_d_vanilla(NULL, NULL, r, 2, f, 2) - sp) < 1e-6);
  CHECK(fabsf(vqgpt_loss_g(NULL, f, 2) - 1.0f) < 1e-6f);
  // Extreme logits neither overflow nor lose the linear part.
  const float big[2] = {-200.0f, 200.0f};
  float dbig[2];
  const float v2 = vqgpt_loss_d_vanilla(NULL, dbig, big, 2, big, 2);
  CHECKF(fabsf(v2 - 100.0f) < 1e-3f, "vanilla loss at |logit| 200: %g", v2);
  CHECK(isfinite(dbig[0]) && isfinite(dbig[1]));

  // Gradients.
  uint64_t rng = 3;
  float a[NR], b[NR], da[NR], db[NR];
  fill_uniform(a, NR, &rng, 2.5f);
  fill_uniform(b, NR, &rng, 2.5f);
  loss_ctx ctx = {a, b, 0};
  for (int i = 0; i < NR; i++) da[i] = 7;
  vqgpt_loss_l1_mean(da, a, b, NR);
  double e = fd_check(eval_loss, &ctx, a, da, NR, NR, 1e-2f);
  CHECKF(e < 1e-3, "l1 gradient error %.3g", e);

  for (int which = 1; which <= 2; which++) {
    ctx.which = which;
    for (int i = 0; i < NR; i++) da[i] = db[i] = 7;
    if (which == 1)
      vqgpt_loss_d_hinge(da, db, a, NR, b, NF);
    else
      vqgpt_loss_d_vanilla(da, db, a, NR, b, NF);
    e = fd_check(eval_loss, &ctx, a, da, NR, NR, 1e-2f);
    CHECKF(e < 1e-3, "%s d/dreal error %.3g", which == 1 ? "hinge" : "vanilla", e);
    e = fd_check(eval_loss, &ctx, b, db, NF, NF, 1e-2f);
    CHECKF(e < 1e-3, "%s d/dfake error %.3g", which == 1 ? "hinge" : "vanilla", e);
  }
  ctx.which = 3;
  vqgpt_loss_g(db, b, NF);
  e = fd_check(eval_loss, &ctx, b, db, NF, NF, 1e-2f);
  CHECKF(e < 1e-3, "g-loss gradient error %.3g", e);
  return test_finish("loss");
}
