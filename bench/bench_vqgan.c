// `vqgpt bench vqgan`: encode and decode speed of the released f16/16384 VQGAN architecture
// (random weights), and the peak memory of a large decode.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <omp.h>

#include "bench/bench.h"
#include "core/clock.h"
#include "cli/args.h"
#include "core/blas.h"
#include "core/error.h"
#include "stage1_vqgan/vqgan_layers.h"

// The reference's released ImageNet f16 model: ch 128, ch_mult [1,1,2,2,4], 2 res blocks,
// attention at 16, z_channels 256, embed_dim 256, 16384 codes.
vqgan_config bench_f16_config(int ch, int n_embed) {
  vqgan_config c = {.embed_dim = 256,
                    .n_embed = n_embed,
                    .ch = ch,
                    .out_ch = 3,
                    .in_channels = 3,
                    .z_channels = 256,
                    .resolution = 256,
                    .ch_mult = {1, 1, 2, 2, 4},
                    .n_levels = 5,
                    .num_res_blocks = 2,
                    .attn_resolutions = {16},
                    .n_attn = 1};
  return c;
}

// Multiply-adds x2 of every convolution on one path, for an H x W image (the attention and
// the normalisations add well under 1%).
static double conv_gflop(const vqgan *m, bool decoder, int H, int W) {
  double f = 0;
  for (size_t i = 0; i < m->n_convs; i++) {
    const vqgan_conv *c = m->convs[i];
    if (c->decoder != decoder) continue;
    int h = H >> c->level, w = W >> c->level;
    double ho = vqgpt_conv2d_out_h(&c->s, h), wo = vqgpt_conv2d_out_w(&c->s, w);
    f += 2.0 * c->s.c_in * c->s.c_out * c->s.k_h * c->s.k_w * ho * wo;
  }
  return f / 1e9;
}

double bench_best_of(int reps, int (*run)(void *), void *ctx) {
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    double t = vqgpt_seconds();
    if (run(ctx)) return -1;
    t = vqgpt_seconds() - t;
    if (t < best) best = t;
  }
  return best;
}

typedef struct {
  vqgan *m;
  float *x;
  int32_t *codes;
  int h, w;
} run_ctx;

static int run_encode(void *p) {
  run_ctx *c = p;
  return vqgpt_vqgan_encode(c->m, c->x, 1, c->h * 16, c->w * 16, c->codes, NULL, NULL);
}

static int run_decode(void *p) {
  run_ctx *c = p;
  return vqgpt_vqgan_decode(c->m, c->codes, 1, c->h, c->w, c->x);
}

int bench_vqgan(int argc, char **argv) {
  long reps = 3, ch = 128, n_embed = 16384;
  const char *grid = NULL;
  cli_opt opts[] = {
      {"reps", OPT_INT, &reps, "timed repetitions (the best is reported)", 1, 1000000},
      {"ch", OPT_INT, &ch, "base channel count (a multiple of 32)", 32, 4096},
      {"n-embed", OPT_INT, &n_embed, "codebook size", 2, 1 << 24},
      {"grid", OPT_STRING, &grid, "only decode one HxW grid and report time and peak memory"},
  };
  cli_status st =
      cli_parse("bench vqgan", "Time encode (256x256) and decode (16x16 codes) of the f16 VQGAN.",
                argc, argv, opts, sizeof opts / sizeof opts[0]);
  if (st != CLI_OK) return st == CLI_HELP ? 0 : 1;
  bench_limits limits;
  if (bench_machine_limits(&limits)) return cli_fail("bench", "out of memory");
  int gh = 16, gw = 16;
  if (grid && (sscanf(grid, "%dx%d", &gh, &gw) != 2 || gh < 1 || gw < 1 || gh > 256 || gw > 256))
    return cli_fail("bench vqgan", "--grid expects HxW (tokens), got '%s'", grid);
  if (reps < 1 || ch < 32 || ch % 32 || n_embed < 2)
    return cli_fail("bench vqgan", "invalid --reps, --ch (multiple of 32) or --n-embed");
  vqgan_config cfg = bench_f16_config((int)ch, (int)n_embed);
  uint64_t rng = 1234;
  vqgan *m = vqgpt_vqgan_create(&cfg, &rng);
  if (!m) return cli_fail("bench vqgan", "%s", vqgpt_last_error());
  run_ctx c = {m, malloc((size_t)3 * gh * 16 * gw * 16 * sizeof(float)),
               calloc((size_t)gh * gw, sizeof(int32_t)), gh, gw};
  if (!c.x || !c.codes) return cli_fail("bench vqgan", "out of memory");
  for (size_t i = 0; i < (size_t)3 * gh * 16 * gw * 16; i++)
    c.x[i] = (float)((i * 7919) % 255) / 127.5f - 1.0f;
  for (size_t i = 0; i < (size_t)gh * gw; i++)
    c.codes[i] = (int32_t)((i * 2654435761u) % (uint32_t)n_embed);
  printf(
      "VQGAN f16: ch %ld, ch_mult [1,1,2,2,4], 2 res blocks, attn at 16, %ld codes; OpenBLAS core "
      "%s, %d threads\n",
      ch, n_embed, vqgpt_blas_corename(), omp_get_max_threads());
  int rc = 0;
  if (grid) {
    double t = bench_best_of(1, run_decode, &c);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    rc = t < 0;
    if (!rc)
      printf("decode %dx%d codes -> %dx%d: %.3f s, %.1f GFLOP/s, peak memory %.0f MiB\n", gw, gh,
             gw * 16, gh * 16, t, conv_gflop(m, true, gh * 16, gw * 16) / t, ru.ru_maxrss / 1024.0);
  } else {
    run_encode(&c);  // warm-up: first-touch page faults and thread start-up
    double te = bench_best_of((int)reps, run_encode, &c);
    double td = bench_best_of((int)reps, run_decode, &c);
    rc = te < 0 || td < 0;
    double fe = conv_gflop(m, false, 256, 256), fd = conv_gflop(m, true, 256, 256);
    if (!rc) {
      printf("encode 256x256:        %.3f s  (%.0f GFLOP, %.1f GFLOP/s)\n", te, fe, fe / te);
      printf("decode 16x16 -> 256px: %.3f s  (%.0f GFLOP, %.1f GFLOP/s)\n", td, fd, fd / td);
    }
  }
  if (rc) cli_fail("bench vqgan", "%s", vqgpt_last_error());
  free(c.x);
  free(c.codes);
  vqgpt_vqgan_free(m);
  return rc;
}
