// `vqgpt bench window`: sliding-window sampling of a 32x64 code grid with the issue's
// reference-sized GPT (12 layers, 512 wide, 8 heads, 16384 codes, trained grid 16x16, random
// init): total time and tokens/s, against the reference loop's full-window forward per token.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "cli/args.h"
#include "core/blas.h"
#include "core/clock.h"
#include "core/error.h"
#include "sampling/sampler.h"

#define CMD "bench window"

typedef struct {
  double t0;
  int B;
} window_progress;

// One line per 256 positions: positions done, tokens/s, time left.
static void report(void *ctx, int done, int total) {
  window_progress *p = ctx;
  if (done % 256 && done != total) return;
  double dt = vqgpt_seconds() - p->t0;
  fprintf(stderr, "  %d/%d positions, %.1f tokens/s, eta %.0f s\n", done, total, p->B * done / dt,
          dt / done * (total - done));
}

int bench_window(int argc, char **argv) {
  long layers = 12, embd = 512, heads = 8, vocab = 16384, window = 16, batch = 1, lanes = 0;
  const char *grid_s = "32x64";
  bool no_reuse = false;
  const char *dtype = "f32";
  cli_opt opts[] = {
      {"dtype", OPT_STRING, &dtype, "f32 | f16 | bf16: weights stored and kept in memory"},
      {"grid", OPT_STRING, &grid_s, "code grid HxW to fill"},
      {"window", OPT_INT, &window, "trained grid (window) side in tokens"},
      {"batch", OPT_INT, &batch, "samples drawn together"},
      {"layers", OPT_INT, &layers, "transformer blocks"},
      {"embd", OPT_INT, &embd, "embedding width"},
      {"heads", OPT_INT, &heads, "attention heads"},
      {"vocab", OPT_INT, &vocab, "vocabulary (codebook) size"},
      {"no-reuse", OPT_FLAG, &no_reuse, "recompute every position's prefix (no K/V reuse)"},
      {"lanes", OPT_INT, &lanes, "grid rows filled together (0: as many as overlap)"},
  };
  cli_status s = cli_parse(CMD, "Times sliding-window sampling of a large code grid.", argc, argv,
                           opts, sizeof opts / sizeof opts[0]);
  if (s != CLI_OK) return s == CLI_HELP ? 0 : 1;
  bench_limits limits;
  if (bench_machine_limits(&limits)) return cli_fail("bench", "out of memory");
  int gh, gw;
  if (sscanf(grid_s, "%dx%d", &gh, &gw) != 2 || gh < 1 || gw < 1 || gh > 1024 || gw > 1024)
    return cli_fail(CMD, "--grid expects HxW with sides in [1, 1024] (got '%s')", grid_s);
  if (layers < 1 || layers > 256 || embd < 1 || embd > 16384 || heads < 1 || vocab < 2 ||
      vocab > (1 << 20) || window < 1 || window > 128 || batch < 1 || batch > 256 || lanes < 0 ||
      lanes > 64)
    return cli_fail(CMD, "sizes out of range");
  gpt_config cfg = {.vocab_size = (int)vocab,
                    .block_size = (int)(window * window + 1),
                    .n_layer = (int)layers,
                    .n_head = (int)heads,
                    .n_embd = (int)embd,
                    .grid_h = (int)window,
                    .grid_w = (int)window};
  vqgpt_gpt_config_defaults(&cfg);
  uint64_t rng = 0;
  gpt *created = vqgpt_gpt_create(&cfg, &rng),
      *m = created ? bench_gpt_for_sampling(created, dtype) : NULL;
  if (m != created) vqgpt_gpt_free(created);
  if (!m) return cli_fail(CMD, "%s", vqgpt_last_error());
  printf(
      "GPT %ld layers x %ld wide, %ld heads, %ld codes, window %ldx%ld: %.1fM parameters, "
      "%s weights (%d threads, OpenBLAS core %s)\n",
      layers, embd, heads, vocab, window, window, m->n_params / 1e6,
      m->half_weights ? dtype : "f32", omp_get_max_threads(), vqgpt_blas_corename());
  size_t n = (size_t)batch * gh * gw;
  int32_t *cond = calloc((size_t)batch, sizeof(int32_t)), *out = malloc(n * sizeof(int32_t));
  int rc = 0;
  if (!cond || !out) rc = cli_fail(CMD, "out of memory");
  sampler_job job;
  vqgpt_sampler_job_default(&job);
  job.B = (int)batch;
  job.n_cond = 1;
  job.cond = cond;
  job.grid_h = gh;
  job.grid_w = gw;
  job.window_h = job.window_w = (int)window;
  job.n_allowed = (int)vocab;
  job.seed = 1;
  job.no_kv_reuse = no_reuse;
  job.lanes = (int)lanes;
  window_progress wp = {vqgpt_seconds(), (int)batch};
  if (!rc && vqgpt_sampler_run(m, &job, out, report, &wp))
    rc = cli_fail(CMD, "%s", vqgpt_last_error());
  double dt = vqgpt_seconds() - wp.t0;
  if (!rc)
    printf(
        "window  %dx%d grid, batch %ld%s%s: %zu tokens in %.1f s = %.1f tokens/s (%.1f ms per "
        "position)\n",
        gh, gw, batch, no_reuse ? ", no K/V reuse" : "", lanes == 1 ? ", one row at a time" : "", n,
        dt, n / dt, 1e3 * dt / (gh * gw));
  free(cond);
  free(out);
  vqgpt_gpt_free(m);
  return rc;
}
