// `vqgpt bench vqgan-train`: one generator + discriminator training step of the f16 VQGAN
// (L1 + codebook + hinge GAN with the adaptive weight, both Adam updates), optionally with
// LPIPS to measure its extra cost.
#include <stdio.h>
#include <stdlib.h>

#include <omp.h>

#include "bench/bench.h"
#include "cli/args.h"
#include "core/blas.h"
#include "core/error.h"
#include "stage1_vqgan/vqgan_train.h"

typedef struct {
  vqgan_trainer *tr;
  const float *x;
  long step;
} step_ctx;

static int run_step(void *p) {
  step_ctx *c = p;
  vqgan_step_stats s;
  return vqgpt_vqgan_trainer_step(c->tr, c->x, c->step++, &s);
}

// Best time of `reps` steps after one warm-up step.
static double time_steps(vqgan_trainer *tr, const float *x, int reps) {
  step_ctx c = {tr, x, 0};
  if (run_step(&c)) return -1;
  return bench_best_of(reps, run_step, &c);
}

int bench_vqgan_train(int argc, char **argv) {
  long reps = 3, batch = 4, size = 128, ch = 64, n_embed = 16384;
  const char *lpips_path = NULL;
  cli_opt opts[] = {
      {"reps", OPT_INT, &reps, "timed steps (the best is reported)", 1, 1000000},
      {"batch", OPT_INT, &batch, "images per step", 1, 256},
      {"size", OPT_INT, &size, "image side (a multiple of 16)", 16, 1024},
      {"ch", OPT_INT, &ch, "base channel count (a multiple of 32)", 32, 4096},
      {"n-embed", OPT_INT, &n_embed, "codebook size", 2, 1 << 24},
      {"lpips", OPT_STRING, &lpips_path, "also time a step with these LPIPS weights"},
  };
  cli_status st = cli_parse("bench vqgan-train",
                            "Time one VQGAN generator + discriminator step (f16 architecture).",
                            argc, argv, opts, sizeof opts / sizeof opts[0]);
  if (st != CLI_OK) return st == CLI_HELP ? 0 : 1;
  bench_limits limits;
  if (bench_machine_limits(&limits)) return cli_fail("bench", "out of memory");
  if (reps < 1 || batch < 1 || size < 16 || size % 16 || ch < 32 || ch % 32 || n_embed < 2)
    return cli_fail("bench vqgan-train", "invalid option value (size must be a multiple of 16)");
  vqgan_config cfg = bench_f16_config((int)ch, (int)n_embed);
  vqgan_train_opts o;
  vqgpt_vqgan_train_defaults(&o);
  o.batch = (int)batch;
  o.size = (int)size;
  o.disc_start = 0;
  uint64_t rng = 99;
  vqgan *g = vqgpt_vqgan_create(&cfg, &rng);
  patchgan *d = g ? vqgpt_patchgan_create(&o.disc, o.batch, o.size, o.size, 2, &rng) : NULL;
  lpips *lp = NULL;
  if (d && lpips_path) lp = vqgpt_lpips_load(lpips_path, o.batch, o.size, o.size);
  vqgan_trainer *plain = d ? vqgpt_vqgan_trainer_new(g, d, NULL, &o) : NULL;
  vqgan_trainer *with_lp = lp ? vqgpt_vqgan_trainer_new(g, d, lp, &o) : NULL;
  size_t n = (size_t)batch * 3 * size * size;
  float *x = malloc(n * sizeof *x);
  int rc = !plain || (lpips_path && !with_lp) || !x;
  if (rc) {
    cli_fail("bench vqgan-train", "%s", x ? vqgpt_last_error() : "out of memory");
  } else {
    for (size_t i = 0; i < n; i++) x[i] = (float)((i * 7919) % 255) / 127.5f - 1.0f;
    printf(
        "VQGAN training step: f16 architecture, ch %ld, %ld codes, batch %ld at %ldx%ld, "
        "PatchGAN ndf 64 x 3 layers; OpenBLAS core %s, %d threads\n",
        ch, n_embed, batch, size, size, vqgpt_blas_corename(), omp_get_max_threads());
    double t = time_steps(plain, x, (int)reps);
    rc = t < 0;
    if (!rc) printf("G+D step (L1 + codebook + hinge GAN, adaptive weight, 2x Adam): %.3f s\n", t);
    if (!rc && with_lp) {
      double tl = time_steps(with_lp, x, (int)reps);
      rc = tl < 0;
      if (!rc) printf("with LPIPS: %.3f s (+%.3f s per step)\n", tl, tl - t);
    }
    if (rc) cli_fail("bench vqgan-train", "%s", vqgpt_last_error());
  }
  free(x);
  vqgpt_vqgan_trainer_free(with_lp);
  vqgpt_vqgan_trainer_free(plain);
  vqgpt_lpips_free(lp);
  vqgpt_patchgan_free(d);
  vqgpt_vqgan_free(g);
  return rc ? 1 : 0;
}
