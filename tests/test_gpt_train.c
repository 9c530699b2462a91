// GPT training: a short run on synthetic code grids with structure must bring the held-out
// loss far below the uniform baseline log(vocab); a run interrupted by a checkpoint and
// resumed must end bit-for-bit where the straight run does; schedule and bad-data checks.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/blas.h"
#include "core/error.h"
#include "core/rng.h"
#include "stage2_transformer/gpt_train.h"
#include "test_util.h"

// Class k draws rows that count up in steps of k+1 from a random start: after the first code
// (and the class) every code is determined, so a model can get far below log(V).
static void make_data(int32_t *codes, int32_t *labels, int n, int h, int w, int V, int n_classes,
                      uint64_t *rng) {
  for (int i = 0; i < n; i++) {
    int k = (int)vqgpt_rng_below(rng, (uint64_t)n_classes),
        start = (int)vqgpt_rng_below(rng, (uint64_t)V);
    labels[i] = k;
    for (int t = 0; t < h * w; t++) codes[(size_t)i * h * w + t] = (start + t * (k + 1)) % V;
  }
}

static gpt *tiny_model(int V, int block, int n_classes, float pdrop, uint64_t seed) {
  gpt_config cfg = {.vocab_size = V,
                    .block_size = block,
                    .n_layer = 2,
                    .n_head = 4,
                    .n_embd = 32,
                    .embd_pdrop = pdrop,
                    .resid_pdrop = pdrop,
                    .attn_pdrop = pdrop,
                    .cond = n_classes ? GPT_COND_CLASS : GPT_COND_NONE,
                    .n_classes = n_classes};
  vqgpt_gpt_config_defaults(&cfg);
  uint64_t rng = seed;
  return vqgpt_gpt_create(&cfg, &rng);
}

static void test_learns(void) {
  int n = 240, h = 4, w = 4, V = 16, K = 3;
  int32_t *codes = malloc(sizeof(int32_t) * n * h * w), labels[240];
  uint64_t rng = 5;
  make_data(codes, labels, n, h, w, V, K, &rng);
  gpt *m = tiny_model(V, h * w, K, 0.0f, 1);
  gpt_train_options o;
  vqgpt_gpt_train_options_default(&o);
  o.batch_size = 16;
  o.steps = 80;
  o.lr = 5e-3f;
  o.min_lr = 3e-4f;
  o.warmup = 10;
  o.val_fraction = 0.1f;
  gpt_dataset d = {.codes = codes, .labels = labels, .n = n, .h = h, .w = w};
  gpt_trainer tr;
  CHECKF(vqgpt_gpt_trainer_init(&tr, m, &d, &o) == 0, "init: %s", vqgpt_last_error());
  CHECK(tr.n_val == 24 && tr.n_train == 216);
  double v0, v1;
  CHECK(vqgpt_gpt_trainer_validate(&tr, &v0) == 0);
  CHECKF(fabs(v0 - log(V)) < 0.3, "initial validation loss %g, expected near log(V) = %g", v0,
         log(V));
  gpt_step_stats st = {0};
  for (long s = 0; s < o.steps; s++)
    if (vqgpt_gpt_trainer_step(&tr, &st)) {
      CHECKF(0, "step: %s", vqgpt_last_error());
      break;
    }
  CHECK(tr.step == o.steps && tr.epoch >= 5);
  CHECK(vqgpt_gpt_trainer_validate(&tr, &v1) == 0);
  // The floor is the first code's entropy, log(16) / 16 = 0.17 per position.
  CHECKF(v1 < 0.35 * log(V), "validation loss %g not well below log(V) = %g", v1, log(V));
  fprintf(stderr, "validation loss %.4f after %ld steps (log V = %.4f)\n", v1, o.steps, log(V));
  CHECKF(st.loss < 0.35 * log(V), "training loss %g", st.loss);
  vqgpt_gpt_trainer_free(&tr);
  vqgpt_gpt_free(m);
  free(codes);
}

// A text-conditional model on grids whose step is told by the prompt's second token (the
// first is a distractor, the rest padding): it must learn to read the prefix (the loss ignores
// the prompt positions), do far worse when the prompts are shuffled, and train with condition
// dropout on too.
static void test_text_learns(void) {
  int n = 240, h = 4, w = 4, Vc = 16, Vt = 6, L = 3, K = 3;
  gpt_config cfg = {.vocab_size = Vc + Vt + 1,
                    .block_size = L + h * w - 1,
                    .n_layer = 2,
                    .n_head = 4,
                    .n_embd = 32,
                    .cond = GPT_COND_TEXT,
                    .text_len = L,
                    .text_vocab = Vt,
                    .n_codes = Vc};
  uint64_t rng = 7;
  gpt *m = vqgpt_gpt_create(&cfg, &rng);
  CHECKF(m && vqgpt_gpt_config_check(&m->cfg, "text") == 0, "text model: %s", vqgpt_last_error());
  if (!m) return;
  int32_t *codes = malloc(sizeof(int32_t) * n * h * w), labels[240], prompts[240 * 3],
          shuffled[240 * 3];
  make_data(codes, labels, n, h, w, Vc, K, &rng);
  for (int i = 0; i < n; i++) {
    prompts[i * L] = Vc + (int32_t)vqgpt_rng_below(&rng, Vt);  // noise
    prompts[i * L + 1] = Vc + labels[i];                       // the step
    prompts[i * L + 2] = vqgpt_gpt_text_pad(&m->cfg);
  }
  for (int i = 0; i < n; i++)  // another sample's prompt
    memcpy(shuffled + i * L, prompts + ((i * 7 + 3) % n) * L, sizeof(int32_t) * L);
  gpt_train_options o;
  vqgpt_gpt_train_options_default(&o);
  o.batch_size = 16;
  o.steps = 100;
  o.lr = 5e-3f;
  o.min_lr = 3e-4f;
  o.warmup = 10;
  o.val_fraction = 0.1f;
  o.cond_drop = 0.1f;
  gpt_dataset d = {.codes = codes, .prompts = prompts, .n = n, .h = h, .w = w};
  gpt_trainer tr;
  CHECKF(vqgpt_gpt_trainer_init(&tr, m, &d, &o) == 0, "init: %s", vqgpt_last_error());
  CHECK(tr.T == L + h * w - 1);
  for (long s = 0; s < o.steps; s++)
    if (vqgpt_gpt_trainer_step(&tr, NULL)) {
      CHECKF(0, "step: %s", vqgpt_last_error());
      break;
    }
  double v_right, v_wrong;
  CHECK(vqgpt_gpt_trainer_validate(&tr, &v_right) == 0);
  tr.data.prompts = shuffled;
  CHECK(vqgpt_gpt_trainer_validate(&tr, &v_wrong) == 0);
  fprintf(stderr, "text model: validation loss %.4f, with other samples' prompts %.4f\n", v_right,
          v_wrong);
  CHECKF(v_right < 0.35 * log(Vc), "validation loss %g not well below log(V) = %g", v_right,
         log(Vc));
  CHECKF(v_wrong > 2 * v_right, "the prompt does not matter: %g vs %g", v_wrong, v_right);
  vqgpt_gpt_trainer_free(&tr);
  // Prompt tokens outside the text range and dropout without a null condition are refused.
  prompts[5] = 3;
  CHECK(vqgpt_gpt_trainer_init(&tr, m, &d, &o) != 0 &&
        strstr(vqgpt_last_error(), "prompt token 3"));
  vqgpt_gpt_free(m);
  gpt *c = tiny_model(Vc, h * w, K, 0.0f, 1);
  d = (gpt_dataset){.codes = codes, .labels = labels, .n = n, .h = h, .w = w};
  CHECK(vqgpt_gpt_trainer_init(&tr, c, &d, &o) != 0 && strstr(vqgpt_last_error(), "null"));
  vqgpt_gpt_free(c);
  free(codes);
}

static void change_batch(gpt_train_options *o) { o->batch_size = 3; }
static void change_lr(gpt_train_options *o) { o->lr = 1e-3f; }
static void change_seed(gpt_train_options *o) { o->seed = 99; }

static void test_resume_exact(void) {
  int n = 37, h = 3, w = 3, V = 20, K = 4, N = 12;
  int32_t codes[37 * 9], labels[37];
  uint64_t rng = 9;
  make_data(codes, labels, n, h, w, V, K, &rng);
  gpt_dataset d = {.codes = codes, .labels = labels, .n = n, .h = h, .w = w};
  gpt_train_options o;
  vqgpt_gpt_train_options_default(&o);
  o.batch_size = 5;  // batches straddle epochs
  o.steps = N;
  o.warmup = 3;
  o.pkeep = 0.8f;
  o.grad_clip = 0.5f;
  o.val_fraction = 0.2f;
  o.seed = 1234;
  char path[64];
  snprintf(path, sizeof path, "/tmp/vqgpt_test_resume_%d.safetensors", (int)getpid());

  gpt *a = tiny_model(V, h * w + 2, K, 0.1f, 3);
  gpt_trainer ta;
  CHECK(vqgpt_gpt_trainer_init(&ta, a, &d, &o) == 0);
  for (int s = 0; s < N; s++) CHECK(vqgpt_gpt_trainer_step(&ta, NULL) == 0);

  gpt *b = tiny_model(V, h * w + 2, K, 0.1f, 3);
  gpt_trainer tb;
  CHECK(vqgpt_gpt_trainer_init(&tb, b, &d, &o) == 0);
  for (int s = 0; s < N / 2; s++) CHECK(vqgpt_gpt_trainer_step(&tb, NULL) == 0);
  CHECKF(vqgpt_gpt_trainer_save(&tb, path) == 0, "save: %s", vqgpt_last_error());
  vqgpt_gpt_trainer_free(&tb);
  vqgpt_gpt_free(b);

  // A trainer with other options (only the step count may change) refuses the checkpoint,
  // naming the option and both values.
  struct {
    void (*change)(gpt_train_options *);
    const char *want;
  } changes[] = {
      {change_batch, "--batch is 3 for this run but the checkpoint was trained with 5"},
      {change_lr, "--lr is 0.001 for this run but the checkpoint was trained with 0.0003"},
      {change_seed, "--seed is 99 for this run but the checkpoint was trained with 1234"}};
  for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++) {
    gpt *x = tiny_model(V, h * w + 2, K, 0.1f, 3);
    gpt_train_options o2 = o;
    changes[i].change(&o2);
    gpt_trainer tx;
    CHECK(vqgpt_gpt_trainer_init(&tx, x, &d, &o2) == 0);
    CHECK(vqgpt_gpt_trainer_resume(&tx, path) != 0);
    CHECKF(strstr(vqgpt_last_error(), changes[i].want), "got '%s'", vqgpt_last_error());
    vqgpt_gpt_trainer_free(&tx);
    vqgpt_gpt_free(x);
  }

  // The checkpoint loads as a plain model; a fresh trainer with the same options and more
  // steps resumes it.
  gpt *c = vqgpt_gpt_load(path);
  CHECKF(c != NULL, "load checkpoint: %s", vqgpt_last_error());
  if (c) {
    gpt_train_options o2 = o;
    o2.steps = N + 5;
    gpt_trainer tc;
    CHECK(vqgpt_gpt_trainer_init(&tc, c, &d, &o2) == 0);
    CHECKF(vqgpt_gpt_trainer_resume(&tc, path) == 0, "resume: %s", vqgpt_last_error());
    CHECK(tc.step == N / 2 && tc.opt.batch_size == 5 && tc.opt.seed == 1234 &&
          tc.opt.steps == N + 5);
    tc.opt.steps = N;  // the straight run's schedule, for the bit-for-bit comparison
    for (int s = N / 2; s < N; s++) CHECK(vqgpt_gpt_trainer_step(&tc, NULL) == 0);
    CHECK(tc.step == ta.step && tc.rng == ta.rng && tc.cursor == ta.cursor && tc.epoch == ta.epoch);
    CHECKF(memcmp(c->params, a->params, a->n_params * sizeof(float)) == 0,
           "resumed parameters differ from the straight run");
    CHECK(memcmp(tc.m, ta.m, a->n_params * sizeof(float)) == 0);
    CHECK(memcmp(tc.v, ta.v, a->n_params * sizeof(float)) == 0);
    double la, lc;
    CHECK(vqgpt_gpt_trainer_validate(&ta, &la) == 0 && vqgpt_gpt_trainer_validate(&tc, &lc) == 0 &&
          la == lc);
    vqgpt_gpt_trainer_free(&tc);
    vqgpt_gpt_free(c);
  }
  // A checkpoint does not resume onto other data.
  gpt *e = tiny_model(V, h * w + 2, K, 0.1f, 3);
  gpt_dataset d2 = {.codes = codes, .labels = labels, .n = n - 1, .h = h, .w = w};
  gpt_trainer te;
  CHECK(vqgpt_gpt_trainer_init(&te, e, &d2, &o) == 0);
  CHECK(vqgpt_gpt_trainer_resume(&te, path) != 0);
  CHECK(strstr(vqgpt_last_error(), "trained on") != NULL);
  vqgpt_gpt_trainer_free(&te);
  vqgpt_gpt_free(e);
  // Nor does a plain model file.
  gpt *f = tiny_model(V, h * w + 2, K, 0.1f, 3);
  char plain[80];
  snprintf(plain, sizeof plain, "%s.plain", path);
  CHECK(vqgpt_gpt_save(f, plain) == 0);
  gpt_trainer tf;
  CHECK(vqgpt_gpt_trainer_init(&tf, f, &d, &o) == 0);
  CHECK(vqgpt_gpt_trainer_resume(&tf, plain) != 0);
  vqgpt_gpt_trainer_free(&tf);
  vqgpt_gpt_free(f);
  unlink(plain);
  unlink(path);
  vqgpt_gpt_trainer_free(&ta);
  vqgpt_gpt_free(a);
}

static void test_schedule(void) {
  gpt_train_options o;
  vqgpt_gpt_train_options_default(&o);
  o.lr = 1.0f;
  o.min_lr = 0.1f;
  o.warmup = 10;
  o.steps = 110;
  CHECK(fabsf(vqgpt_gpt_train_lr(&o, 0) - 0.1f) < 1e-6f);
  CHECK(fabsf(vqgpt_gpt_train_lr(&o, 9) - 1.0f) < 1e-6f);
  CHECK(fabsf(vqgpt_gpt_train_lr(&o, 10) - 1.0f) < 1e-6f);
  CHECK(fabsf(vqgpt_gpt_train_lr(&o, 60) - 0.55f) < 1e-6f);
  CHECK(fabsf(vqgpt_gpt_train_lr(&o, 110) - 0.1f) < 1e-6f);
  CHECK(fabsf(vqgpt_gpt_train_lr(&o, 500) - 0.1f) < 1e-6f);
  gpt_train_options bad = o;
  bad.pkeep = 0;
  CHECK(vqgpt_gpt_train_options_check(&bad) != 0);
  bad = o;
  bad.min_lr = 2;
  CHECK(vqgpt_gpt_train_options_check(&bad) != 0);
  bad = o;
  bad.val_fraction = 1;
  CHECK(vqgpt_gpt_train_options_check(&bad) != 0);
}

static void test_bad_data(void) {
  int32_t codes[4 * 4] = {0}, labels[4] = {0, 1, 2, 3};
  gpt_train_options o;
  vqgpt_gpt_train_options_default(&o);
  gpt_trainer tr;
  gpt *m = tiny_model(10, 4, 3, 0, 1);  // block 4: a 2x2 grid fits
  gpt_dataset d = {.codes = codes, .labels = labels, .n = 4, .h = 2, .w = 2};
  CHECK(vqgpt_gpt_trainer_init(&tr, m, &d, &o) != 0);  // label 3 out of range
  CHECK(strstr(vqgpt_last_error(), "label") != NULL);
  labels[3] = 2;
  codes[5] = 10;
  CHECK(vqgpt_gpt_trainer_init(&tr, m, &d, &o) != 0);  // code out of range
  codes[5] = 9;
  gpt_dataset big = {
      .codes = codes, .labels = labels, .n = 2, .h = 2, .w = 3};  // 2x3 needs 6 positions
  CHECK(vqgpt_gpt_trainer_init(&tr, m, &big, &o) != 0);
  CHECK(strstr(vqgpt_last_error(), "block_size") != NULL);
  gpt_dataset nolabels = {.codes = codes, .labels = NULL, .n = 4, .h = 2, .w = 2};
  CHECK(vqgpt_gpt_trainer_init(&tr, m, &nolabels, &o) != 0);
  CHECK(vqgpt_gpt_trainer_init(&tr, m, &d, &o) == 0);
  vqgpt_gpt_trainer_free(&tr);
  vqgpt_gpt_free(m);
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  test_schedule();
  test_bad_data();
  test_resume_exact();
  test_learns();
  test_text_learns();
  return test_finish("test_gpt_train");
}
