// Element-wise activations against double references; backward against the exact
// derivative and central finite differences; in-place calls and NaN propagation.
#include "core/activation.h"

#include "core/blas.h"
#include "test_util.h"

enum { ACT_SWISH, ACT_LEAKY, ACT_RELU, ACT_COUNT };
static const char *act_names[ACT_COUNT] = {"swish", "leaky_relu", "relu"};
static const float slope = 0.2f;

static double ref_f(int a, double x) {
  switch (a) {
    case ACT_SWISH:
      return x / (1.0 + exp(-x));
    case ACT_LEAKY:
      return x > 0 ? x : x * slope;
    default:
      return x > 0 ? x : 0.0;
  }
}

static double ref_df(int a, double x) {
  switch (a) {
    case ACT_SWISH: {
      double s = 1.0 / (1.0 + exp(-x));
      return s * (1.0 + x * (1.0 - s));
    }
    case ACT_LEAKY:
      return x > 0 ? 1.0 : slope;
    default:
      return x > 0 ? 1.0 : 0.0;
  }
}

static void fwd(int a, float *out, const float *in, size_t n) {
  switch (a) {
    case ACT_SWISH:
      vqgpt_swish_forward(out, in, n);
      break;
    case ACT_LEAKY:
      vqgpt_leaky_relu_forward(out, in, n, slope);
      break;
    default:
      vqgpt_relu_forward(out, in, n);
      break;
  }
}

static void bwd(int a, float *din, const float *dout, const float *in, size_t n) {
  switch (a) {
    case ACT_SWISH:
      vqgpt_swish_backward(din, dout, in, n);
      break;
    case ACT_LEAKY:
      vqgpt_leaky_relu_backward(din, dout, in, n, slope);
      break;
    default:
      vqgpt_relu_backward(din, dout, in, n);
      break;
  }
}

typedef struct {
  int a;
  size_t n;
  float *in, *out, *g;
} loss_ctx;

static double act_loss(void *p) {
  loss_ctx *l = p;
  fwd(l->a, l->out, l->in, l->n);
  double acc = 0;
  for (size_t i = 0; i < l->n; i++) acc += (double)l->out[i] * l->g[i];
  return acc;
}

static void run(int a, size_t n, float scale, uint64_t *rng) {
  const char *name = act_names[a];
  float *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out), *g = malloc(n * sizeof *g);
  float *din = malloc(n * sizeof *din), *tmp = malloc(n * sizeof *tmp);
  double *ref = malloc(n * sizeof *ref);
  fill_uniform(in, n, rng, scale);
  // Keep inputs off the kinks of the ReLUs so finite differences are meaningful.
  for (size_t i = 0; i < n; i++)
    if (fabsf(in[i]) < 0.05f) in[i] = in[i] < 0 ? -0.05f - in[i] : 0.05f + in[i];
  fill_uniform(g, n, rng, 1.0f);

  for (size_t i = 0; i < n; i++) ref[i] = ref_f(a, in[i]);
  fwd(a, out, in, n);
  double e = rel_err_d(out, ref, n);
  CHECKF(e < 1e-5, "%s forward n=%zu: relative error %.3g", name, n, e);
  memcpy(tmp, in, n * sizeof *tmp);
  fwd(a, tmp, tmp, n);
  CHECKF(rel_err_d(tmp, ref, n) < 1e-5, "%s forward in place n=%zu", name, n);

  for (size_t i = 0; i < n; i++) ref[i] = g[i] * ref_df(a, in[i]);
  for (size_t i = 0; i < n; i++) din[i] = 1e6f;
  bwd(a, din, g, in, n);
  e = rel_err_d(din, ref, n);
  CHECKF(e < 1e-5, "%s backward n=%zu: relative error %.3g", name, n, e);
  memcpy(tmp, g, n * sizeof *tmp);
  bwd(a, tmp, tmp, in, n);
  CHECKF(rel_err_d(tmp, ref, n) < 1e-5, "%s backward in place n=%zu", name, n);

  if (n <= 4096) {  // each sample re-runs the whole forward
    loss_ctx l = {a, n, in, out, g};
    double f = fd_check(act_loss, &l, in, din, n, 211, 1e-2f);
    CHECKF(f < 1e-3, "%s backward vs finite differences n=%zu: %.3g", name, n, f);
  }
  free(in), free(out), free(g), free(din), free(tmp), free(ref);
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  uint64_t rng = 4242;
  for (int a = 0; a < ACT_COUNT; a++) {
    run(a, 1001, 6.0f, &rng);
    run(a, 100003, 6.0f, &rng);  // large enough for the threaded path
    run(a, 37, 30.0f, &rng);
  }

  // Swish far into both tails, where exp over- or underflows, and its derivative there.
  float x[] = {-200.0f, -100.0f, -88.0f, -20.0f, 20.0f, 88.0f, 100.0f, 1e30f, -1e30f, 0.0f};
  size_t nx = sizeof x / sizeof x[0];
  float y[sizeof x / sizeof x[0]], dy[sizeof x / sizeof x[0]], one[sizeof x / sizeof x[0]];
  for (size_t i = 0; i < nx; i++) one[i] = 1.0f;
  vqgpt_swish_forward(y, x, nx);
  vqgpt_swish_backward(dy, one, x, nx);
  for (size_t i = 0; i < nx; i++) {
    double r = ref_f(ACT_SWISH, x[i]), dr = ref_df(ACT_SWISH, x[i]);
    CHECKF(fabs(y[i] - r) <= 1e-6 * fabs(r) + 1e-30, "swish(%g) = %g, want %g", x[i], y[i], r);
    CHECKF(fabs(dy[i] - dr) <= 1e-6, "swish'(%g) = %g, want %g", x[i], dy[i], dr);
  }

  // NaN propagates through every forward (the trainers' NaN checks rely on it).
  float nan_in[3] = {NAN, 1.0f, -1.0f}, nan_out[3];
  for (int a = 0; a < ACT_COUNT; a++) {
    fwd(a, nan_out, nan_in, 3);
    CHECKF(isnan(nan_out[0]), "%s(NaN) is not NaN", act_names[a]);
  }
  return test_finish("test_activation");
}
