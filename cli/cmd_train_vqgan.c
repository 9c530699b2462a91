// `vqgpt train-vqgan`: trains a VQGAN on an image folder with the reference's objective.
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "core/clock.h"
#include "core/dist.h"
#include "cli/commands.h"
#include "cli/folder_report.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "weights/json.h"
#include "stage1_vqgan/vqgan_train.h"

#define CMD "train-vqgan"

typedef struct {
  const char *data, *out, *config, *lpips, *disc_loss, *quant_loss;
  long size, scale, steps, batch, disc_start, seed, log_every, sample_every, save_every, n_val;
  long ndf, disc_layers, n_embed, reinit_every;
  double lr, disc_weight, perceptual_weight, codebook_weight;
  bool resume, overwrite, no_flip;
} train_args;

static int read_file(const char *path, char **out) {
  FILE *f = fopen(path, "rb");
  if (!f) return vqgpt_error("%s: cannot open", path);
  char *buf = malloc(65536);
  size_t n = buf ? fread(buf, 1, 65535, f) : 0;
  fclose(f);
  if (!buf) return vqgpt_error("out of memory");
  buf[n] = '\0';
  *out = buf;
  return 0;
}

// Named presets, or a JSON file with the reference's {embed_dim, n_embed, ddconfig}.
static int make_config(vqgan_config *c, const char *name, int size, int n_embed) {
  if (!strcmp(name, "tiny") || !strcmp(name, "small") || !strcmp(name, "f16")) {
    bool tiny = !strcmp(name, "tiny"), f16 = !strcmp(name, "f16");
    *c = (vqgan_config){.embed_dim = tiny  ? 16
                                     : f16 ? 256
                                           : 64,
                        .n_embed = tiny  ? 64
                                   : f16 ? 1024
                                         : 512,
                        .ch = tiny  ? 32
                              : f16 ? 128
                                    : 64,
                        .out_ch = 3,
                        .in_channels = 3,
                        .z_channels = tiny  ? 16
                                      : f16 ? 256
                                            : 64,
                        .resolution = size,
                        .ch_mult = {1, 2, 2},
                        .n_levels = 3,
                        .num_res_blocks = f16 ? 2 : 1,
                        .attn_resolutions = {16},
                        .n_attn = 1};
    if (f16) {
      int mult[5] = {1, 1, 2, 2, 4};
      memcpy(c->ch_mult, mult, sizeof mult);
      c->n_levels = 5;
    }
  } else {
    char *json = NULL;
    if (read_file(name, &json)) return -1;
    int rc = vqgpt_vqgan_config_parse(c, json, name);
    free(json);
    if (rc) return -1;
  }
  if (n_embed > 0) c->n_embed = n_embed;
  if (size % vqgpt_vqgan_config_factor(c))
    return vqgpt_error("--size %d is not a multiple of the model's factor %d", size,
                       vqgpt_vqgan_config_factor(c));
  return 0;
}

typedef struct {
  image_dataset data;
  size_t *train_idx, n_train, *val_idx, n_val;
} split;

// A fixed validation subset: evenly spaced images, never trained on.
static int make_split(split *s, long n_val) {
  size_t n = s->data.n;
  if (n_val < 0 || (size_t)n_val >= n)
    return vqgpt_error("--val %ld leaves no training images (%zu found)", n_val, n);
  s->n_val = (size_t)n_val;
  s->train_idx = malloc(n * sizeof(size_t));
  s->val_idx = malloc((s->n_val + 1) * sizeof(size_t));
  if (!s->train_idx || !s->val_idx) return vqgpt_error("out of memory");
  size_t stride = s->n_val ? n / s->n_val : n + 1;
  for (size_t i = 0; i < n; i++) {
    if (s->n_val && i % stride == 0 && i / stride < s->n_val)
      s->val_idx[i / stride] = i;
    else
      s->train_idx[s->n_train++] = i;
  }
  return 0;
}

static double psnr_of(const float *a, const float *b, size_t n) {
  double se = 0;
  for (size_t i = 0; i < n; i++) {
    // Compare as the 8-bit images a person sees.
    double pa = round((fmin(fmax(a[i], -1), 1) + 1) * 127.5),
           pb = round((fmin(fmax(b[i], -1), 1) + 1) * 127.5);
    se += (pa - pb) * (pa - pb);
  }
  double mse = se / n;
  return mse > 0 ? 10 * log10(255.0 * 255.0 / mse) : 99.0;
}

// Reconstructs the validation images; writes inputs (top) and reconstructions (bottom) as
// one PNG and returns the mean PSNR.
static int validate(vqgan *g, const split *s, const char *png, double *psnr) {
  int S = s->data.crop_w, f = vqgpt_vqgan_factor(g), n = (int)(s->n_val < 8 ? s->n_val : 8);
  size_t per = (size_t)3 * S * S;
  float *x = malloc(per * 2 * n * sizeof *x);
  int32_t *codes = malloc((size_t)(S / f) * (S / f) * sizeof *codes);
  if (!x || !codes) {
    free(x);
    free(codes);
    return vqgpt_error("out of memory");
  }
  int rc = 0;
  double total = 0;
  for (size_t i = 0; i < s->n_val && !rc; i++) {
    float *in = x + per * (i < (size_t)n ? i : 0), *rec = in + per * n;
    vqgpt_image_dataset_center_crop(&s->data, s->val_idx[i], in);
    rc = vqgpt_vqgan_encode(g, in, 1, S, S, codes, NULL, NULL) ||
         vqgpt_vqgan_decode(g, codes, 1, S / f, S / f, rec);
    if (!rc) total += psnr_of(in, rec, per);
  }
  *psnr = s->n_val ? total / s->n_val : 0;
  if (!rc && png && n > 0) {
    image_rgb grid;
    rc = vqgpt_image_grid(&grid, x, 2 * n, S, S, n);
    if (!rc) rc = vqgpt_image_save_png(&grid, png);
    vqgpt_image_free(&grid);
  }
  free(x);
  free(codes);
  return rc;
}

static void accumulate(vqgan_step_stats *sum, const vqgan_step_stats *s) {
  sum->loss += s->loss;
  sum->l1 += s->l1;
  sum->lpips += s->lpips;
  sum->qloss += s->qloss;
  sum->g_loss += s->g_loss;
  sum->d_loss += s->d_loss;
  sum->d_weight += s->d_weight;
}

static double perplexity(const int64_t *counts, int K, long total) {
  double h = 0;
  for (int k = 0; k < K; k++)
    if (counts[k]) {
      double p = (double)counts[k] / total;
      h -= p * log(p);
    }
  return exp(h);
}

static int file_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

// The settings that shape a run, recorded in the checkpoint's train_state ("settings": flag ->
// value as text) so that --resume can refuse a run that would silently differ. --steps may
// change (a run is extended); logging and checkpoint intervals do not change the run.
// A setting added later has `legacy`: what a checkpoint that does not record it was trained
// with, or NULL when that is unknown (it is then not checked for such a checkpoint).
#define N_SETTINGS 18
typedef struct {
  const char *flag;
  char value[48];
  bool added_later;
  const char *legacy;
} run_setting;

static int run_settings(run_setting *s, const train_args *a, size_t n_images, bool have_lpips) {
  int n = 0;
#define SET(name, ...) \
  (s[n] = (run_setting){.flag = name}, snprintf(s[n].value, sizeof s[n].value, __VA_ARGS__), n++)
#define SET_LATER(name, legacy_value, ...) \
  (SET(name, __VA_ARGS__), s[n - 1].added_later = true, s[n - 1].legacy = legacy_value)
  SET("--batch", "%ld", a->batch);
  SET("--size", "%ld", a->size);
  SET("--lr", "%.9g", a->lr);
  SET("--disc-start", "%ld", a->disc_start);
  SET("--disc-weight", "%.9g", a->disc_weight);
  SET("--disc-loss", "%s", a->disc_loss);
  SET("--ndf", "%ld", a->ndf);
  SET("--disc-layers", "%ld", a->disc_layers);
  SET("--lpips", "%s", have_lpips ? "given" : "none");
  SET("--perceptual-weight", "%.9g", have_lpips ? a->perceptual_weight : 0.0);
  SET("--codebook-weight", "%.9g", a->codebook_weight);
  SET("--quant-loss", "%s", a->quant_loss);
  SET("--reinit-every", "%ld", a->reinit_every);
  SET("--val", "%ld", a->n_val);
  SET("--seed", "%ld", a->seed);
  SET("--data (images found)", "%zu", n_images);
  SET_LATER("--scale", NULL, "%ld", a->scale ? a->scale : a->size);
  SET_LATER("--no-flip", "no", "%s", a->no_flip ? "yes" : "no");  // older vqgpt always mirrored
#undef SET_LATER
#undef SET
  return n;
}

// train_state: {"step": S, "rng": R, "settings": {...}}; step and rng first, in the form older
// checkpoints have, so that one sscanf reads both kinds.
static char *train_state_json(long step, uint64_t rng, const run_setting *s, int n) {
  size_t cap = 256 + (size_t)n * 96;
  char *j = malloc(cap);
  if (!j) return NULL;
  size_t len =
      (size_t)snprintf(j, cap, "{\"step\": %ld, \"rng\": %" PRIu64 ", \"settings\": {", step, rng);
  for (int i = 0; i < n && len < cap; i++)
    len += (size_t)snprintf(j + len, cap - len, "%s\"%s\": \"%s\"", i ? ", " : "", s[i].flag,
                            s[i].value);
  if (len < cap) snprintf(j + len, cap - len, "}}");
  return j;
}

// --resume continues the run the checkpoint recorded: every setting must be the same.
static int check_resume_settings(const char *path, const char *state, const run_setting *s, int n) {
  json_value *root = vqgpt_json_parse(state, strlen(state));
  const json_value *rec = root ? vqgpt_json_get(root, "settings") : NULL;
  int rc = 0;
  if (!rec || rec->type != JSON_OBJECT) {
    rc = vqgpt_error(
        "%s: the checkpoint does not record its training settings (written by an "
        "older vqgpt?), so a resume cannot be checked: start afresh with --overwrite",
        path);
  }
  for (int i = 0; i < n && !rc; i++) {
    const char *was = vqgpt_json_get_string(rec, s[i].flag);
    if (!was && s[i].added_later) was = s[i].legacy;
    if (!was && s[i].added_later) continue;
    if (!was)
      rc = vqgpt_error("%s: the checkpoint does not record %s", path, s[i].flag);
    else if (strcmp(was, s[i].value))
      rc = vqgpt_error(
          "%s: %s is %s for this run but the checkpoint was trained with %s (resume "
          "with the same settings; only --steps may change)",
          path, s[i].flag, s[i].value, was);
  }
  vqgpt_json_free(root);
  return rc;
}

int cmd_train_vqgan(int argc, char **argv) {
  // Defaults that train a small folder healthily: the reference's base rate 4.5e-6 is tuned for
  // 8 GPUs x batch 12 and barely moves a run of batch 4, whose codebook then collapses; dead
  // codes are re-initialised every 250 steps so that usage stays up (when checkpoints fall on
  // those steps, as an exact resume needs).
  train_args a = {.config = "small",
                  .disc_loss = "hinge",
                  .quant_loss = "legacy",
                  .size = 64,
                  .steps = 20000,
                  .batch = 8,
                  .disc_start = 10000,
                  .seed = 1,
                  .log_every = 50,
                  .sample_every = 500,
                  .save_every = 1000,
                  .n_val = 8,
                  .ndf = 64,
                  .disc_layers = 3,
                  .reinit_every = -1,
                  .lr = 5e-5,
                  .disc_weight = 0.8,
                  .perceptual_weight = 1.0,
                  .codebook_weight = 1.0};
  cli_opt opts[] = {
      {"data", OPT_STRING, &a.data, "image folder (PNG/JPEG, searched recursively)"},
      {"out", OPT_STRING, &a.out, "checkpoint / model file (.safetensors), written atomically"},
      {"config", OPT_STRING, &a.config,
       "tiny (ch 32, f4, 64 codes of 16: tests) | small (ch 64, f4, 512 codes of 64) | f16 (the "
       "released f16 architecture: ch 128, ch_mult 1,1,2,2,4, 1024 codes of 256) | a JSON file "
       "{embed_dim, n_embed, ddconfig}"},
      {"n-embed", OPT_INT, &a.n_embed, "override the codebook size (0: the config's)", 0, 1 << 24},
      {"size", OPT_INT, &a.size, "training crop side in pixels", 8, 1024},
      {"scale", OPT_INT, &a.scale, "scale each image's shorter side to this first (0: --size)", 0,
       4096},
      {"steps", OPT_INT, &a.steps, "total training steps", 1, 1000000000},
      {"batch", OPT_INT, &a.batch, "images per step", 1, 256},
      {"lr", OPT_FLOAT, &a.lr, "base learning rate (times batch, as the reference)"},
      {"disc-start", OPT_INT, &a.disc_start, "step at which the GAN loss switches on", 0,
       1000000000},
      {"disc-weight", OPT_FLOAT, &a.disc_weight, "discriminator weight on the adaptive lambda"},
      {"disc-loss", OPT_STRING, &a.disc_loss, "hinge | vanilla"},
      {"ndf", OPT_INT, &a.ndf, "discriminator base channels", 1, PATCHGAN_MAX_CHANNELS},
      {"disc-layers", OPT_INT, &a.disc_layers, "discriminator n_layers", 1, PATCHGAN_MAX_N_LAYERS},
      {"lpips", OPT_STRING, &a.lpips,
       "LPIPS weights (.safetensors); without them perceptual weight is 0"},
      {"perceptual-weight", OPT_FLOAT, &a.perceptual_weight, "LPIPS weight"},
      {"codebook-weight", OPT_FLOAT, &a.codebook_weight, "codebook + commitment loss weight"},
      {"quant-loss", OPT_STRING, &a.quant_loss, "legacy (reference default) | corrected"},
      {"reinit-every", OPT_INT, &a.reinit_every,
       "re-initialise codes unused for this many steps (0: never; default 250 when --save-every is "
       "a multiple)",
       -1, 1000000000},
      {"val", OPT_INT, &a.n_val, "validation images held out (evenly spaced)", 0, 1000000},
      {"log-every", OPT_INT, &a.log_every, "steps between progress lines", 1, 1000000000},
      {"sample-every", OPT_INT, &a.sample_every, "steps between validation PSNR + <out>.recon.png",
       1, 1000000000},
      {"save-every", OPT_INT, &a.save_every, "steps between checkpoints", 1, 1000000000},
      {"seed", OPT_INT, &a.seed, "random seed (weights, crops, flips)", 0, LONG_MAX},
      {"no-flip", OPT_FLAG, &a.no_flip, "never mirror the crops (by default half are mirrored)"},
      {"resume", OPT_FLAG, &a.resume,
       "continue from --out exactly where it stopped (same settings)"},
      {"overwrite", OPT_FLAG, &a.overwrite, "start afresh even if --out exists"},
  };
  cli_status st =
      cli_parse(CMD, "Train a VQGAN (L1 + LPIPS + codebook + PatchGAN) on an image folder.", argc,
                argv, opts, sizeof opts / sizeof opts[0]);
  if (st != CLI_OK) return st == CLI_HELP ? 0 : 1;
  if (!cli_require(CMD, "data", a.data) || !cli_require(CMD, "out", a.out)) return 1;
  if (!(a.lr > 0)) return cli_fail(CMD, "--lr must be > 0 (got %g)", a.lr);
  if (!(a.disc_weight >= 0) || !(a.perceptual_weight >= 0) || !(a.codebook_weight >= 0))
    return cli_fail(CMD, "--disc-weight, --perceptual-weight and --codebook-weight must be >= 0");
  if (a.scale != 0 && a.scale < a.size)
    return cli_fail(CMD, "--scale %ld is below --size %ld (0 scales to --size)", a.scale, a.size);
  if (strcmp(a.disc_loss, "hinge") && strcmp(a.disc_loss, "vanilla"))
    return cli_fail(CMD, "--disc-loss must be hinge or vanilla");
  if (strcmp(a.quant_loss, "legacy") && strcmp(a.quant_loss, "corrected"))
    return cli_fail(CMD, "--quant-loss must be legacy or corrected");
  if (a.reinit_every < 0) a.reinit_every = a.save_every % 250 ? 0 : 250;
  if (a.reinit_every && a.save_every % a.reinit_every)
    return cli_fail(CMD, "--save-every must be a multiple of --reinit-every (exact resume)");
  if (a.resume && a.overwrite) return cli_fail(CMD, "give --resume or --overwrite, not both");
  if (!cli_output_ok(CMD, a.out)) return 1;
  if (a.resume && !file_exists(a.out)) return cli_fail(CMD, "--resume: %s does not exist", a.out);
  if (!a.resume && !a.overwrite && file_exists(a.out))
    return cli_fail(CMD, "%s exists: pass --resume to continue it or --overwrite to replace it",
                    a.out);

  vqgan_config cfg;
  if (make_config(&cfg, a.config, (int)a.size, (int)a.n_embed))
    return cli_fail(CMD, "%s", vqgpt_last_error());
  vqgan_train_opts o;
  vqgpt_vqgan_train_defaults(&o);
  o.batch = (int)a.batch;
  o.size = (int)a.size;
  o.base_lr = a.lr;
  o.disc_start = a.disc_start;
  o.disc_weight = a.disc_weight;
  o.perceptual_weight = a.perceptual_weight;
  o.codebook_weight = a.codebook_weight;
  o.hinge = !strcmp(a.disc_loss, "hinge");
  o.legacy_quant = !strcmp(a.quant_loss, "legacy");
  o.disc = (patchgan_config){3, (int)a.ndf, (int)a.disc_layers};
  // Data-parallel (mpirun -np N): this rank trains on rows [lo, lo + local) of every batch.
  o.ranks = vqgpt_dist_size();
  if (a.batch % o.ranks)
    return cli_fail(CMD,
                    "--batch %ld is not a multiple of the %d ranks (each takes an equal share)",
                    a.batch, o.ranks);
  const int local = (int)a.batch / o.ranks, lo = vqgpt_dist_rank() * local;
  const bool leader = vqgpt_dist_rank() == 0;  // logs, validates and writes the checkpoints

  split s = {0};
  vqgan *g = NULL;
  patchgan *d = NULL;
  lpips *lp = NULL;
  vqgan_trainer *tr = NULL;
  float *x = NULL;
  int64_t *counts = NULL;
  char *state = NULL;
  int rc = 1;
  uint64_t rng = (uint64_t)a.seed;
  long step = 0;
  if (vqgpt_image_dataset_load(&s.data, a.data, a.scale ? (int)a.scale : (int)a.size, (int)a.size,
                               (int)a.size) ||
      make_split(&s, a.n_val)) {
    cli_fail(CMD, "%s", vqgpt_last_error());
    goto done;
  }
  cli_report_folder(CMD, a.data, &s.data.folder);
  fprintf(stderr, "%s: %zu images (%zu train, %zu validation), %dx%d crops\n", a.data, s.data.n,
          s.n_train, s.n_val, (int)a.size, (int)a.size);
  if (!(g = vqgpt_vqgan_create(&cfg, &rng)) ||
      !(d = vqgpt_patchgan_create(&o.disc, local, o.size, o.size, 2, &rng))) {
    cli_fail(CMD, "%s", vqgpt_last_error());
    goto done;
  }
  if (a.lpips && !(lp = vqgpt_lpips_load(a.lpips, local, o.size, o.size))) {
    cli_fail(CMD, "%s", vqgpt_last_error());
    goto done;
  }
  if (!lp) fprintf(stderr, "no --lpips weights given: training with perceptual weight 0\n");
  if (!(tr = vqgpt_vqgan_trainer_new(g, d, lp, &o))) {
    cli_fail(CMD, "%s", vqgpt_last_error());
    goto done;
  }
  run_setting settings[N_SETTINGS];
  int n_settings = run_settings(settings, &a, s.data.n, lp != NULL);
  if (a.resume) {
    if (!(state = vqgpt_vqgan_trainer_load(tr, a.out))) {
      cli_fail(CMD, "%s", vqgpt_last_error());
      goto done;
    }
    if (sscanf(state, "{\"step\": %ld, \"rng\": %" SCNu64, &step, &rng) != 2 || step < 0) {
      cli_fail(CMD, "%s: malformed train_state in the checkpoint", a.out);
      goto done;
    }
    if (check_resume_settings(a.out, state, settings, n_settings)) {
      cli_fail(CMD, "%s", vqgpt_last_error());
      goto done;
    }
    fprintf(stderr, "resumed %s at step %ld\n", a.out, step);
  }
  int K = cfg.n_embed, f = vqgpt_vqgan_factor(g), tokens = (int)(a.size / f) * (int)(a.size / f);
  size_t per = (size_t)3 * a.size * a.size;
  x = malloc(per * local * sizeof *x);
  counts = calloc((size_t)K, sizeof *counts);
  bool *dead = calloc((size_t)K, sizeof *dead);
  int64_t *usage = calloc((size_t)K, sizeof *usage);
  if (!x || !counts || !dead || !usage) {
    free(dead);
    free(usage);
    cli_fail(CMD, "out of memory");
    goto done;
  }
  char recon_png[4096];
  snprintf(recon_png, sizeof recon_png, "%s.recon.png", a.out);
  double t0 = vqgpt_seconds(), t_log = t0;
  long logged_from = step;
  vqgan_step_stats sum = {0};
  rc = 0;
  while (step < a.steps && !rc) {
    // Every rank draws the whole batch (the same stream as one process), keeping its rows.
    for (long b = 0; b < a.batch; b++)
      vqgpt_image_dataset_random_crop(&s.data, s.train_idx[vqgpt_rng_below(&rng, s.n_train)], &rng,
                                      !a.no_flip,
                                      b >= lo && b < lo + local ? x + per * (b - lo) : NULL);
    vqgan_step_stats ss;
    if (vqgpt_vqgan_trainer_step(tr, x, step, &ss)) {
      // Counted as the progress lines count (step N is the N-th); the diverged state is not saved.
      rc = cli_fail(CMD, "step %ld: %s; stopped without saving it", step + 1, vqgpt_last_error());
      break;
    }
    const int32_t *idx = vqgpt_vqgan_trainer_indices(tr);
    for (long i = 0; i < (long)local * tokens; i++) counts[idx[i]]++, usage[idx[i]]++;
    accumulate(&sum, &ss);
    step++;
    if (step % a.log_every == 0 || step == a.steps) {
      vqgpt_dist_allreduce_sum_i64(counts, (size_t)K);  // every rank's codes (only rank 0 prints)
      long n = step - logged_from, used = 0, total = n * a.batch * tokens;
      for (int k = 0; k < K; k++) used += counts[k] > 0;
      double dt = vqgpt_seconds() - t_log, eta = (a.steps - step) * dt / n;
      fprintf(stderr,
              "step %ld/%ld  loss %.4f  l1 %.4f  lpips %.4f  q %.4f  g %.4f  d %.4f  lambda %.3g  "
              "codes %ld/%d ppl %.1f  %.2f img/s  eta %.0fs\n",
              step, a.steps, sum.loss / n, sum.l1 / n, sum.lpips / n, sum.qloss / n, sum.g_loss / n,
              sum.d_loss / n, sum.d_weight / n, used, K, perplexity(counts, K, total),
              n * a.batch / dt, eta);
      memset(&sum, 0, sizeof sum);
      t_log = vqgpt_seconds();
      logged_from = step;
      memset(counts, 0, (size_t)K * sizeof *counts);
    }
    if (a.reinit_every && step % a.reinit_every == 0) {
      vqgpt_dist_allreduce_sum_i64(usage, (size_t)K);  // dead on every rank alike
      for (int k = 0; k < K; k++) dead[k] = usage[k] == 0;
      int n = vqgpt_vqgan_trainer_reinit_codes(tr, dead, &rng);
      if (n) fprintf(stderr, "step %ld: re-initialised %d unused codes\n", step, n);
      memset(usage, 0, (size_t)K * sizeof *usage);
    }
    if (leader && (step % a.sample_every == 0 || step == a.steps)) {
      double psnr = 0;
      if (validate(g, &s, recon_png, &psnr)) {
        rc = cli_fail(CMD, "validation: %s", vqgpt_last_error());
        break;
      }
      fprintf(stderr, "step %ld: validation PSNR %.2f dB (%zu images) -> %s\n", step, psnr, s.n_val,
              recon_png);
    }
    if (leader && (step % a.save_every == 0 || step == a.steps)) {
      char *ts = train_state_json(step, rng, settings, n_settings);
      if (!ts)
        rc = cli_fail(CMD, "out of memory");
      else if (vqgpt_vqgan_trainer_save(tr, a.out, ts))
        rc = cli_fail(CMD, "%s", vqgpt_last_error());
      free(ts);
    }
  }
  if (!rc) fprintf(stderr, "done: %ld steps in %.1f s -> %s\n", step, vqgpt_seconds() - t0, a.out);
  free(dead);
  free(usage);
done:
  free(state);
  free(counts);
  free(x);
  vqgpt_vqgan_trainer_free(tr);
  vqgpt_lpips_free(lp);
  vqgpt_patchgan_free(d);
  vqgpt_vqgan_free(g);
  free(s.train_idx);
  free(s.val_idx);
  vqgpt_image_dataset_free(&s.data);
  return rc ? 1 : 0;
}
