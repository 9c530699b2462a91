// Data-parallel dropout: a batch trained as two halves (vqgpt_gpt_forward's row0 = 0 and B/2,
// as two ranks do) gets the masks of the whole batch at once, so the per-token losses and the
// gradients (each half's weighted by its share of the targets, as the trainer's all-reduce
// does) equal the whole batch's. With the offset ignored (both halves at row0 = 0) they differ.
// Each dropout site alone, then all three.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/blas.h"
#include "core/error.h"
#include "core/rng.h"
#include "stage2_transformer/gpt.h"
#include "test_util.h"

#define NB 4
#define NT 7
#define SEED 1234

// The whole batch's per-token losses (NB*NT), mean loss and gradients from its two halves,
// the second run at row0 = `second_row0`.
static int run_halves(gpt *m, const int32_t *in, const int32_t *tgt, int second_row0, float *losses,
                      float *loss, float *grads) {
  int half = NB / 2;
  size_t n = (size_t)half * NT;
  float *g[2] = {alloc_f(m->n_params), alloc_f(m->n_params)};
  double sum = 0;
  int count[2];
  for (int h = 0; h < 2; h++) {
    vqgpt_gpt_zero_grad(m);
    int row0 = h ? second_row0 : 0;
    if (vqgpt_gpt_forward(m, in + h * n, tgt + h * n, half, NT, true, SEED, row0) ||
        vqgpt_gpt_backward(m)) {
      free(g[0]), free(g[1]);
      return -1;
    }
    memcpy(losses + h * n, m->a.losses, n * sizeof(float));
    memcpy(g[h], m->grads, m->n_params * sizeof(float));
    count[h] = m->n_valid;
    sum += (double)m->loss * m->n_valid;
  }
  // Each half's gradient is of its own mean: weight it by its share of the targets.
  int total = count[0] + count[1];
  for (size_t i = 0; i < m->n_params; i++)
    grads[i] = g[0][i] * ((float)count[0] / total) + g[1][i] * ((float)count[1] / total);
  *loss = (float)(sum / total);
  free(g[0]), free(g[1]);
  return 0;
}

static void test_split(const char *what, float embd, float resid, float attn) {
  gpt_config cfg = {.vocab_size = 13,
                    .block_size = 8,
                    .n_layer = 2,
                    .n_head = 2,
                    .n_embd = 16,
                    .embd_pdrop = embd,
                    .resid_pdrop = resid,
                    .attn_pdrop = attn};
  vqgpt_gpt_config_defaults(&cfg);
  uint64_t rng = 5;
  gpt *m = vqgpt_gpt_create(&cfg, &rng);
  CHECKF(m && vqgpt_gpt_alloc_grads(m) == 0, "%s: model: %s", what, vqgpt_last_error());
  if (!m) return;
  // Larger weights than the 0.02 init make every path (and every mask) matter.
  for (size_t i = 0; i < m->n_params; i++) m->params[i] += 0.3f * vqgpt_rng_normal(&rng);
  int32_t in[NB * NT], tgt[NB * NT];
  for (int i = 0; i < NB * NT; i++) {
    in[i] = (int32_t)vqgpt_rng_below(&rng, 13);
    tgt[i] = i % 5 == 0 ? -1 : (int32_t)vqgpt_rng_below(&rng, 13);  // halves differ in count
  }
  size_t P = m->n_params;
  float *g_whole = alloc_f(P), *g_split = alloc_f(P), *g_wrong = alloc_f(P);
  float l_whole[NB * NT], l_split[NB * NT], l_wrong[NB * NT], loss_whole, loss_split, loss_wrong;

  vqgpt_gpt_zero_grad(m);
  CHECKF(vqgpt_gpt_forward(m, in, tgt, NB, NT, true, SEED, 0) == 0 && vqgpt_gpt_backward(m) == 0,
         "%s: whole batch: %s", what, vqgpt_last_error());
  memcpy(l_whole, m->a.losses, sizeof l_whole);
  memcpy(g_whole, m->grads, P * sizeof(float));
  loss_whole = m->loss;
  CHECKF(run_halves(m, in, tgt, NB / 2, l_split, &loss_split, g_split) == 0, "%s: halves: %s", what,
         vqgpt_last_error());
  CHECKF(run_halves(m, in, tgt, 0, l_wrong, &loss_wrong, g_wrong) == 0, "%s: halves at 0: %s", what,
         vqgpt_last_error());

  // The same operations row by row; only the sums over rows (weight gradients) change order.
  double el = rel_err(l_split, l_whole, NB * NT), eg = rel_err(g_split, g_whole, P);
  double eL = fabs((double)loss_split - loss_whole) / fabs((double)loss_whole);
  CHECKF(el < 1e-5, "%s: per-token losses of the halves differ from the whole's: %g", what, el);
  CHECKF(eL < 1e-5, "%s: loss of the halves %g vs the whole's %g", what, loss_split, loss_whole);
  CHECKF(eg < 1e-5, "%s: gradients of the halves differ from the whole's: %g", what, eg);
  // The second half with the first half's masks: another result, far outside the tolerance.
  double wl = rel_err(l_wrong, l_whole, NB * NT), wg = rel_err(g_wrong, g_whole, P);
  CHECKF(wl > 1e-3, "%s: per-token losses do not depend on row0 (%g)", what, wl);
  CHECKF(wg > 1e-3, "%s: gradients do not depend on row0 (%g)", what, wg);
  fprintf(stderr, "%s: halves vs whole: losses %.2g, gradients %.2g; row0 ignored: %.2g, %.2g\n",
          what, el, eg, wl, wg);
  free(g_whole), free(g_split), free(g_wrong);
  vqgpt_gpt_free(m);
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  test_split("embedding dropout", 0.2f, 0, 0);
  test_split("residual dropout", 0, 0.2f, 0);
  test_split("attention dropout", 0, 0, 0.2f);
  test_split("all dropout", 0.1f, 0.1f, 0.1f);
  return test_finish("test_gpt_dropout_rows");
}
