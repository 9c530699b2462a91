// `vqgpt bench gpt`: the reference-sized GPT (12 layers, 512 wide, 8 heads, 16384
// codes, random init) timed on sampling 256 tokens at batch 1 and 8 through the KV cache, and
// on training steps at batch 4 x 256 tokens with AdamW. --dtype f16|bf16 samples with the
// weights rounded to that format and kept so in memory (vqgpt_gpt_load_for_sampling).
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "core/clock.h"
#include "cli/args.h"
#include "core/blas.h"
#include "core/error.h"
#include "core/rng.h"
#include "sampling/sampler.h"
#include "stage2_transformer/gpt_train.h"

static int bench_sample(const gpt *m, int B, int n_tokens, const bench_limits *limits) {
  int32_t *cond = calloc((size_t)B, sizeof(int32_t));
  int32_t *out = malloc((size_t)B * n_tokens * sizeof(int32_t));
  if (!cond || !out) {
    free(cond);
    free(out);
    return cli_fail("bench gpt", "out of memory");
  }
  sampler_job job;
  vqgpt_sampler_job_sequence(&job, m, B, cond, n_tokens);
  job.seed = 1;
  double t0 = vqgpt_seconds();
  int rc = vqgpt_sampler_run(m, &job, out, NULL, NULL);
  double dt = vqgpt_seconds() - t0;
  free(cond);
  free(out);
  if (rc) return cli_fail("bench gpt", "%s", vqgpt_last_error());
  // Each step reads every weight once (for the whole batch): the memory-bandwidth bound.
  double gbs = bench_gpt_weight_mb(m) * 1e6 * (double)n_tokens / dt / 1e9;
  printf(
      "sample  batch %d: %d tokens in %.3f s = %.1f tokens/s (%.2f ms per step; weights read "
      "at %.1f GB/s, %.0f%% of the machine's)\n",
      B, B * n_tokens, dt, B * n_tokens / dt, 1e3 * dt / n_tokens, gbs,
      100 * gbs / limits->read_gbs);
  return 0;
}

static int bench_train(gpt *m, int B, int T, int steps) {
  int n = 2 * B;
  int32_t *codes = malloc((size_t)n * T * sizeof(int32_t));
  if (!codes) return cli_fail("bench gpt", "out of memory");
  uint64_t rng = 2;
  for (size_t i = 0; i < (size_t)n * T; i++)
    codes[i] = (int32_t)vqgpt_rng_below(&rng, (uint64_t)m->cfg.n_codes);
  gpt_dataset d = {.codes = codes, .labels = NULL, .n = n, .h = 1, .w = T};
  gpt_train_options o;
  vqgpt_gpt_train_options_default(&o);
  o.batch_size = B;
  o.steps = steps + 1;
  o.warmup = 0;
  o.val_fraction = 0;
  gpt_trainer tr;
  if (vqgpt_gpt_trainer_init(&tr, m, &d, &o)) {
    free(codes);
    return cli_fail("bench gpt", "%s", vqgpt_last_error());
  }
  int rc = 0;
  gpt_step_stats st;
  // The first step also faults in the activation and optimizer memory: timed separately.
  double t0 = vqgpt_seconds();
  if (vqgpt_gpt_trainer_step(&tr, &st)) rc = cli_fail("bench gpt", "%s", vqgpt_last_error());
  double first = vqgpt_seconds() - t0, best = 1e30, total = 0;
  for (int s = 0; s < steps && !rc; s++) {
    t0 = vqgpt_seconds();
    if (vqgpt_gpt_trainer_step(&tr, &st)) rc = cli_fail("bench gpt", "%s", vqgpt_last_error());
    double dt = vqgpt_seconds() - t0;
    total += dt;
    if (dt < best) best = dt;
  }
  if (!rc)
    printf(
        "train   batch %d x %d tokens: %.3f s per step (mean of %d; best %.3f; first %.3f) = "
        "%.0f tokens/s, loss %.3f\n",
        B, T, total / steps, steps, best, first, B * T / (total / steps), st.loss);
  vqgpt_gpt_trainer_free(&tr);
  free(codes);
  return rc;
}

gpt *bench_gpt_for_sampling(gpt *m, const char *dtype) {
  if (!strcmp(dtype, "f32")) return m;
  st_dtype storage = !strcmp(dtype, "f16") ? ST_F16 : !strcmp(dtype, "bf16") ? ST_BF16 : ST_F32;
  if (storage == ST_F32) {
    vqgpt_error("--dtype must be f32, f16 or bf16, not '%s'", dtype);
    return NULL;
  }
  const char *dir = getenv("TMPDIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/vqgpt_bench_%d.safetensors", dir && dir[0] ? dir : "/tmp",
           (int)getpid());
  gpt *h = vqgpt_gpt_save_as(m, path, storage) ? NULL : vqgpt_gpt_load_for_sampling(path);
  unlink(path);
  return h;
}

double bench_gpt_weight_mb(const gpt *m) {
  const gpt_config *c = &m->cfg;
  size_t V = c->vocab_size, C = c->n_embd, L = c->n_layer;
  size_t matrices = 2 * V * C + 12 * L * C * C;  // tok_emb, head, qkv, proj, fc, fcproj
  if (!m->half_weights) return m->n_params * 4.0 / 1e6;
  return ((m->n_params - matrices) * 4.0 + matrices * 2.0) / 1e6;
}

int bench_gpt(int argc, char **argv) {
  long layers = 12, embd = 512, heads = 8, vocab = 16384, tokens = 256, train_steps = 3;
  bool no_sample = false, no_train = false;
  const char *dtype = "f32";
  cli_opt opts[] = {
      {"dtype", OPT_STRING, &dtype,
       "f32 | f16 | bf16: weights stored and kept in memory for sampling"},
      {"layers", OPT_INT, &layers, "transformer blocks", 1, 256},
      {"embd", OPT_INT, &embd, "embedding width", 1, 16384},
      {"heads", OPT_INT, &heads, "attention heads", 1, 16384},
      {"vocab", OPT_INT, &vocab, "vocabulary (codebook) size", 2, 1 << 20},
      {"tokens", OPT_INT, &tokens, "tokens sampled per sequence; training sequence length", 1,
       16384},
      {"train-steps", OPT_INT, &train_steps, "timed training steps (after one untimed)", 1,
       1000000},
      {"no-sample", OPT_FLAG, &no_sample, "skip the sampling benchmark"},
      {"no-train", OPT_FLAG, &no_train, "skip the training benchmark"},
  };
  cli_status s = cli_parse("bench gpt", "Times GPT sampling (KV cache) and training steps.", argc,
                           argv, opts, sizeof opts / sizeof opts[0]);
  if (s != CLI_OK) return s == CLI_HELP ? 0 : 1;
  bench_limits limits;
  if (bench_machine_limits(&limits)) return cli_fail("bench", "out of memory");
  if (layers < 1 || embd < 1 || heads < 1 || vocab < 2 || tokens < 1 || train_steps < 1 ||
      layers > 256 || embd > 16384 || vocab > (1 << 20) || tokens > 16384)
    return cli_fail("bench gpt", "sizes out of range");
  gpt_config cfg = {.vocab_size = (int)vocab,
                    .block_size = (int)tokens,
                    .n_layer = (int)layers,
                    .n_head = (int)heads,
                    .n_embd = (int)embd};
  vqgpt_gpt_config_defaults(&cfg);
  uint64_t rng = 0;
  gpt *m = vqgpt_gpt_create(&cfg, &rng);
  if (!m) return cli_fail("bench gpt", "%s", vqgpt_last_error());
  gpt *sm = no_sample ? m : bench_gpt_for_sampling(m, dtype);
  if (!sm) {
    vqgpt_gpt_free(m);
    return cli_fail("bench gpt", "%s", vqgpt_last_error());
  }
  printf(
      "GPT %ld layers x %ld wide, %ld heads, %ld codes: %.1fM parameters (%d threads, "
      "OpenBLAS core %s)\n",
      layers, embd, heads, vocab, m->n_params / 1e6, omp_get_max_threads(), vqgpt_blas_corename());
  if (!no_sample)
    printf("sampling weights: %s, %.0f MB in memory\n", sm->half_weights ? dtype : "f32",
           bench_gpt_weight_mb(sm));
  int rc = 0;
  if (!no_sample) rc = bench_sample(sm, 1, (int)tokens, &limits);
  if (!no_sample && !rc) rc = bench_sample(sm, 8, (int)tokens, &limits);
  if (sm != m) vqgpt_gpt_free(sm);
  if (!no_train && !rc) rc = bench_train(m, 4, (int)tokens, (int)train_steps);
  vqgpt_gpt_free(m);
  return rc;
}
