// vqgpt sample: draws code grids from a GPT (all --num samples as one batch, KV-cached; grids
// larger than the model's window by the sliding window) and writes them as .npy and/or,
// decoded by the VQGAN, as a PNG. Conditions: a class (id or name), a text prompt, or none;
// classifier-free guidance; image completion from codes or an image. Without model flags the
// shipped models are used, and a model's recommended settings apply where no flag is given.
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/models.h"
#include "cli/vqgan_io.h"
#include "core/clock.h"
#include "core/error.h"
#include "data/npy.h"
#include "sampling/sampler.h"
#include "stage1_vqgan/vqgan.h"
#include "stage2_transformer/gpt.h"
#include "tokenizer/prompt.h"
#include "weights/json.h"

#define CMD "sample"
#define SAMPLE_MAX_NUM 4096
#define SAMPLE_MAX_SIDE 4096

// The shipped models each kind of request uses when no --gpt is given.
#define DEFAULT_TEXT_GPT "fmnist_text_gpt.safetensors"
#define DEFAULT_CLASS_GPT "fmnist_class_gpt.safetensors"
#define DEFAULT_GPT "gpt_landscape.safetensors"

typedef struct {
  const char *gpt, *vqgan, *cls, *prompt, *grid, *size, *out, *codes_out, *init_codes, *init_image;
  // Optional numbers as text: NULL means "the model's recommendation, else the default".
  const char *temperature, *top_k, *top_p, *cfg;
  long num, seed, keep, keep_rows, resize;
  bool greedy, crop, list_classes;
} sample_args;

// Everything a run holds, freed in one place.
typedef struct {
  gpt *m;
  vqgan *vq;
  char *gpt_path, *vqgan_path;
  int32_t *cond, *uncond, *init, *codes;
  int gh, gw, B, keep;
} sample_run;

static void run_free(sample_run *r) {
  vqgpt_gpt_free(r->m);
  vqgpt_vqgan_free(r->vq);
  free(r->gpt_path);
  free(r->vqgan_path);
  free(r->cond);
  free(r->uncond);
  free(r->init);
  free(r->codes);
}

// "AxB" with two integers in [1, SAMPLE_MAX_SIDE].
static bool parse_pair(const char *s, int *a, int *b) {
  char tail;
  return sscanf(s, "%dx%d%c", a, b, &tail) == 2 && *a >= 1 && *b >= 1 && *a <= SAMPLE_MAX_SIDE &&
         *b <= SAMPLE_MAX_SIDE;
}

static bool parse_double(const char *s, double *v) {
  char *end;
  *v = strtod(s, &end);
  return end != s && !*end && isfinite(*v);
}

typedef struct {
  double t0;
  int B;
  bool tty;
} progress_state;

static void fmt_eta(char *buf, size_t n, double s) {
  if (s < 60)
    snprintf(buf, n, "%.0f s", s);
  else
    snprintf(buf, n, "%d min %02d s", (int)s / 60, (int)s % 60);
}

// Positions done, tokens/s and time left: a self-overwriting line on a terminal; into a file or
// pipe, a line per tenth of a long run and the final one.
static void progress(void *ctx, int done, int total) {
  progress_state *p = ctx;
  int tenth = total / 10 > 0 ? total / 10 : 1;
  if (done != total && (p->tty ? done % 16 != 0 : (total < 512 || done % tenth != 0))) return;
  double dt = vqgpt_seconds() - p->t0;
  char eta[32];
  fmt_eta(eta, sizeof eta, done ? dt / done * (total - done) : 0);
  fprintf(stderr, "%ssampling: %d/%d positions, %.1f tokens/s, %s left%s", p->tty ? "\r" : "", done,
          total, dt > 0 ? p->B * done / dt : 0.0, eta, done == total || !p->tty ? "\n" : "");
}

// The model's recommended setting `key` from its card, if any.
static bool card_number(const gpt *m, const char *key, double *v) {
  if (!m->card.sampling) return false;
  json_value *j = vqgpt_json_parse(m->card.sampling, strlen(m->card.sampling));
  bool ok = j && vqgpt_json_get_number(j, key, v) && isfinite(*v);
  vqgpt_json_free(j);
  return ok;
}

// A flag's value if given, else the model's recommendation, else `fallback`.
static int setting(const gpt *m, const char *flag, const char *given, const char *key,
                   double fallback, double *v) {
  if (given)
    return parse_double(given, v) ? 0
                                  : cli_fail(CMD, "--%s expects a number (got '%s')", flag, given);
  if (!card_number(m, key, v)) *v = fallback;
  return 0;
}

static int sampling_settings(const sample_args *a, const gpt *m, sampling_params *sp, float *cfg) {
  double t, k, p, s;
  if (setting(m, "temperature", a->temperature, "temperature", 1.0, &t) ||
      setting(m, "top-k", a->top_k, "top_k", 0, &k) ||
      setting(m, "top-p", a->top_p, "top_p", 1.0, &p) || setting(m, "cfg", a->cfg, "cfg", 1.0, &s))
    return 1;
  int V = m->cfg.vocab_size;
  if (!(t > 0)) return cli_fail(CMD, "--temperature must be > 0 (got %g)", t);
  if (k < 0 || k > V || k != floor(k))
    return cli_fail(CMD, "--top-k must be an integer in [1, %d], or 0 for all (got %g)", V, k);
  if (!(p > 0 && p <= 1)) return cli_fail(CMD, "--top-p must be in (0, 1] (got %g)", p);
  if (s < -100 || s > 100) return cli_fail(CMD, "--cfg must be in [-100, 100] (got %g)", s);
  *sp = (sampling_params){(float)t, (int)k, (float)p, a->greedy};
  *cfg = (float)s;
  return 0;
}

// The class id of --class: an integer id or one of the names in the model's card.
static int class_id(const gpt *m, const char *text, int *id) {
  const gpt_config *c = &m->cfg;
  char *end;
  long v = strtol(text, &end, 10);
  if (end != text && !*end) {
    if (v < 0 || v >= c->n_classes)
      return cli_fail(CMD, "--class %s out of range: the model has classes 0..%d", text,
                      c->n_classes - 1);
    *id = (int)v;
    return 0;
  }
  json_value *names = m->card.class_names
                          ? vqgpt_json_parse(m->card.class_names, strlen(m->card.class_names))
                          : NULL;
  int found = -1;
  for (size_t i = 0; names && i < names->count && found < 0; i++)
    if (!strcmp(names->items[i].string, text)) found = (int)i;
  vqgpt_json_free(names);
  if (found < 0 || found >= c->n_classes)
    return cli_fail(CMD, "--class '%s' is not a class of the model (see --list-classes)", text);
  *id = found;
  return 0;
}

static int list_classes(const gpt *m, const char *path) {
  if (m->cfg.cond != GPT_COND_CLASS) return cli_fail(CMD, "%s is not class-conditional", path);
  json_value *names = m->card.class_names
                          ? vqgpt_json_parse(m->card.class_names, strlen(m->card.class_names))
                          : NULL;
  for (int i = 0; i < m->cfg.n_classes; i++)
    printf("%d\t%s\n", i, names && (size_t)i < names->count ? names->items[i].string : "");
  vqgpt_json_free(names);
  return 0;
}

// Condition tokens for every sample, and the null condition when guidance is asked for.
static int make_conditions(const sample_args *a, sample_run *r, float cfg_scale) {
  const gpt_config *c = &r->m->cfg;
  int nc = vqgpt_gpt_n_cond(c), B = r->B;
  bool guided = cfg_scale != 1.0f;
  r->cond = malloc((size_t)B * nc * sizeof(int32_t));
  r->uncond = guided ? malloc((size_t)B * nc * sizeof(int32_t)) : NULL;
  if (!r->cond || (guided && !r->uncond)) return cli_fail(CMD, "out of memory");
  if (c->cond != GPT_COND_CLASS && a->cls)
    return cli_fail(CMD, "--class given but %s is not class-conditional", r->gpt_path);
  if (c->cond != GPT_COND_TEXT && a->prompt)
    return cli_fail(CMD, "--prompt given but %s is not text-conditional", r->gpt_path);
  if (guided && c->cond == GPT_COND_NONE)
    return cli_fail(CMD, "--cfg needs a conditional model; %s is unconditional", r->gpt_path);
  if (guided && c->cond == GPT_COND_CLASS && c->null_class == 0)
    return cli_fail(CMD, "%s was trained without a null class: it cannot be guided (--cfg 1)",
                    r->gpt_path);
  if (c->cond == GPT_COND_CLASS) {
    int id = 0;
    if (!a->cls)
      return cli_fail(CMD,
                      "%s is class-conditional: give --class (0..%d or a name, see "
                      "--list-classes)",
                      r->gpt_path, c->n_classes - 1);
    if (class_id(r->m, a->cls, &id)) return 1;
    for (int b = 0; b < B; b++) {
      r->cond[b] = id;
      if (guided) r->uncond[b] = c->null_class;
    }
  } else if (c->cond == GPT_COND_TEXT) {
    if (!a->prompt) return cli_fail(CMD, "%s is text-conditional: give --prompt TEXT", r->gpt_path);
    vqgpt_tokenizer *tok = cli_gpt_tokenizer(r->m, r->gpt_path);
    int rc = tok ? vqgpt_prompt_encode(c, tok, a->prompt, false, r->cond, NULL) : -1;
    vqgpt_tokenizer_free(tok);
    if (rc) return cli_fail(CMD, "%s", vqgpt_last_error());
    for (int b = 1; b < B; b++)
      memcpy(r->cond + (size_t)b * nc, r->cond, (size_t)nc * sizeof(int32_t));
    for (int b = 0; b < B && guided; b++) vqgpt_prompt_null(c, r->uncond + (size_t)b * nc);
  } else {
    for (int b = 0; b < B; b++) r->cond[b] = c->sos_token;
  }
  return 0;
}

// The grid, and for completion the given codes and how many positions are kept.
static int make_grid(const sample_args *a, sample_run *r) {
  int init_grids = 1;
  if ((a->init_codes || a->init_image) && (a->grid || a->size))
    return cli_fail(CMD,
                    "--grid/--size do not go with --init-codes/--init-image: the grid comes "
                    "from the file");
  if (a->init_codes && a->init_image)
    return cli_fail(CMD, "give --init-codes or --init-image, not both");
  if (a->init_codes) {
    if (a->keep < 0)
      return cli_fail(CMD, "--init-codes needs --keep N (positions kept, raster order)");
    int ndim;
    int64_t sh[NPY_MAX_DIMS];
    if (vqgpt_npy_read_i32(a->init_codes, &r->init, &ndim, sh))
      return cli_fail(CMD, "%s", vqgpt_last_error());
    if (ndim != 2 && ndim != 3)
      return cli_fail(CMD, "%s: codes must be [h, w] or [n, h, w] (got %d dimensions)",
                      a->init_codes, ndim);
    int64_t n = ndim == 3 ? sh[0] : 1, h = sh[ndim - 2], w = sh[ndim - 1];
    if (n < 1 || h < 1 || w < 1 || h > SAMPLE_MAX_SIDE || w > SAMPLE_MAX_SIDE || n > SAMPLE_MAX_NUM)
      return cli_fail(CMD, "%s: code grid %" PRId64 "x%" PRId64 " x %" PRId64 " out of range",
                      a->init_codes, n, h, w);
    if (ndim == 3 && a->num != 1 && a->num != n)
      return cli_fail(CMD, "%s holds %" PRId64 " grids but --num is %ld", a->init_codes, n, a->num);
    r->gh = (int)h;
    r->gw = (int)w;
    if (a->keep > h * w)
      return cli_fail(CMD,
                      "--keep %ld is beyond the %" PRId64 " positions of the %" PRId64 "x%" PRId64
                      " grid in %s",
                      a->keep, h * w, h, w, a->init_codes);
    r->keep = (int)a->keep;
    if (ndim == 3) r->B = init_grids = (int)n;
  } else if (a->init_image) {
    if (a->keep_rows < 0) return cli_fail(CMD, "--init-image needs --keep-rows R (code rows kept)");
    int h, w;
    if (vqgan_io_encode_file(r->vq, a->init_image, a->crop, a->resize, &r->init, &h, &w, NULL))
      return cli_fail(CMD, "%s", vqgpt_last_error());
    if (a->keep_rows > h)
      return cli_fail(CMD, "--keep-rows %ld beyond the %d code rows of %s", a->keep_rows, h,
                      a->init_image);
    r->gh = h;
    r->gw = w;
    r->keep = (int)a->keep_rows * w;
  } else if (a->size) {
    int sw, sh, f = vqgpt_vqgan_factor(r->vq);
    if (!parse_pair(a->size, &sw, &sh))
      return cli_fail(CMD, "--size expects WxH in pixels, e.g. 256x256 (got '%s')", a->size);
    if (sw % f || sh % f)
      return cli_fail(CMD, "--size %dx%d is not a multiple of the VQGAN's downsampling factor %d",
                      sw, sh, f);
    r->gh = sh / f;
    r->gw = sw / f;
  } else if (a->grid) {
    if (!parse_pair(a->grid, &r->gh, &r->gw))
      return cli_fail(CMD, "--grid expects HxW in tokens, e.g. 16x16 (got '%s')", a->grid);
  } else if (vqgpt_gpt_trained_grid(&r->m->cfg, &r->gh, &r->gw)) {
    return cli_fail(CMD, "%s: give --grid HxW", vqgpt_last_error());
  }
  if (a->keep >= 0 && !a->init_codes) return cli_fail(CMD, "--keep goes with --init-codes");
  if (a->keep_rows >= 0 && !a->init_image)
    return cli_fail(CMD, "--keep-rows goes with --init-image");
  // One given grid serves every sample.
  if (r->init && r->B > 1 && init_grids == 1) {
    size_t hw = (size_t)r->gh * r->gw;
    int32_t *all = realloc(r->init, (size_t)r->B * hw * sizeof(int32_t));
    if (!all) return cli_fail(CMD, "out of memory");
    r->init = all;
    for (int b = 1; b < r->B; b++) memcpy(all + b * hw, all, hw * sizeof(int32_t));
  }
  return 0;
}

static int write_outputs(const sample_args *a, const sample_run *r) {
  // The image first: a failure there leaves no file at all.
  if (a->out) {
    if (vqgan_io_decode_to_png(r->vq, r->codes, r->B, r->gh, r->gw, a->out))
      return cli_fail(CMD, "%s", vqgpt_last_error());
    int f = vqgpt_vqgan_factor(r->vq);
    fprintf(stderr, "wrote %s (%d sample%s of %dx%d pixels)\n", a->out, r->B, r->B > 1 ? "s" : "",
            r->gw * f, r->gh * f);
  }
  if (a->codes_out) {
    int64_t shape[3] = {r->B, r->gh, r->gw};
    int w = r->B == 1 ? vqgpt_npy_write_i32(a->codes_out, r->codes, 2, shape + 1)
                      : vqgpt_npy_write_i32(a->codes_out, r->codes, 3, shape);
    if (w) return cli_fail(CMD, "%s", vqgpt_last_error());
    fprintf(stderr, "wrote %s (%d x %dx%d codes)\n", a->codes_out, r->B, r->gh, r->gw);
  }
  return 0;
}

static int run(const sample_args *a, sample_run *r) {
  const char *name = a->gpt                      ? NULL
                     : a->prompt                 ? DEFAULT_TEXT_GPT
                     : a->cls || a->list_classes ? DEFAULT_CLASS_GPT
                                                 : DEFAULT_GPT;
  r->gpt_path = name ? cli_shipped_model(name) : strdup(a->gpt);
  if (!r->gpt_path) return cli_fail(CMD, "%s", vqgpt_last_error());
  if (!(r->m = vqgpt_gpt_load_for_sampling(r->gpt_path)))
    return cli_fail(CMD, "%s", vqgpt_last_error());
  if (a->list_classes) return list_classes(r->m, r->gpt_path);
  if (!a->out && !a->codes_out)
    return cli_fail(CMD, "nothing to write: give --out and/or --codes-out");
  bool need_vqgan = a->out || a->init_image || a->size || a->vqgan;
  if (need_vqgan) {
    r->vqgan_path = a->vqgan ? strdup(a->vqgan) : cli_vqgan_for_gpt(r->m, r->gpt_path);
    if (!r->vqgan_path) return cli_fail(CMD, "%s", vqgpt_last_error());
    if (!(r->vq = vqgpt_vqgan_load(r->vqgan_path)) ||
        cli_check_vqgan(r->m, r->gpt_path, r->vq, r->vqgan_path))
      return cli_fail(CMD, "%s", vqgpt_last_error());
  }
  sampling_params sp;
  float cfg_scale = 1;
  r->B = (int)a->num;
  if (sampling_settings(a, r->m, &sp, &cfg_scale) || make_grid(a, r) ||
      make_conditions(a, r, cfg_scale))
    return 1;
  int n_allowed = r->m->cfg.n_codes;
  if (r->vq && vqgpt_vqgan_get_config(r->vq)->n_embed < n_allowed)
    n_allowed = vqgpt_vqgan_get_config(r->vq)->n_embed;
  sampler_job job;
  vqgpt_sampler_job_default(&job);
  job.B = r->B;
  job.n_cond = vqgpt_gpt_n_cond(&r->m->cfg);
  job.cond = r->cond;
  job.uncond = r->uncond;
  job.cfg_scale = cfg_scale;
  job.grid_h = r->gh;
  job.grid_w = r->gw;
  // Without a known trained grid, a grid that fits the block is one window (the plain sampler).
  if (vqgpt_gpt_trained_grid(&r->m->cfg, &job.window_h, &job.window_w)) {
    job.window_h = r->gh;
    job.window_w = r->gw;
  }
  job.n_allowed = n_allowed;
  job.init = r->init;
  job.keep = r->keep;
  job.sp = sp;
  job.seed = (uint64_t)a->seed;
  size_t n = (size_t)r->B * r->gh * r->gw;
  if (!(r->codes = malloc(n * sizeof(int32_t)))) return cli_fail(CMD, "out of memory");
  progress_state ps = {vqgpt_seconds(), r->B, isatty(STDERR_FILENO) != 0};
  if (vqgpt_sampler_run(r->m, &job, r->codes, progress, &ps))
    return cli_fail(CMD, "%s", vqgpt_last_error());
  return write_outputs(a, r);
}

int cmd_sample(int argc, char **argv) {
  sample_args a = {.num = 1, .keep = -1, .keep_rows = -1};
  cli_opt opts[] = {
      {"gpt", OPT_STRING, &a.gpt,
       "GPT model (default: the shipped model for --prompt, --class or neither)"},
      {"vqgan", OPT_STRING, &a.vqgan, "VQGAN to decode with (default: the one the GPT names)"},
      {"class", OPT_STRING, &a.cls, "class id or name, for a class-conditional GPT"},
      {"list-classes", OPT_FLAG, &a.list_classes, "print the model's classes and exit"},
      {"prompt", OPT_STRING, &a.prompt, "text prompt, for a text-conditional GPT"},
      {"cfg", OPT_STRING, &a.cfg, "classifier-free guidance scale (1: none; default: the model's)"},
      {"grid", OPT_STRING, &a.grid,
       "code grid HxW in tokens (default: the model's); larger grids slide the window"},
      {"size", OPT_STRING, &a.size, "image size WxH in pixels instead of --grid"},
      {"temperature", OPT_STRING, &a.temperature,
       "divide the logits by T > 0 (default: the model's, else 1)"},
      {"top-k", OPT_STRING, &a.top_k,
       "keep the K most likely tokens (0: all; default: the model's)"},
      {"top-p", OPT_STRING, &a.top_p,
       "keep the smallest set with probability >= P (default: the model's, else 1)"},
      {"greedy", OPT_FLAG, &a.greedy, "take the most likely token instead of drawing"},
      {"seed", OPT_INT, &a.seed, "random seed (sample k depends only on the seed and k)"},
      {"num", OPT_INT, &a.num, "number of samples, drawn as one batch"},
      {"init-codes", OPT_STRING, &a.init_codes, "complete these codes (.npy [h, w] or [n, h, w])"},
      {"keep", OPT_INT, &a.keep, "with --init-codes: positions kept (raster order)"},
      {"init-image", OPT_STRING, &a.init_image, "complete this image's codes"},
      {"keep-rows", OPT_INT, &a.keep_rows, "with --init-image: code rows kept from the top"},
      {"crop", OPT_FLAG, &a.crop, "with --init-image: center-crop to a multiple of the factor"},
      {"resize", OPT_INT, &a.resize, "with --init-image: scale the shorter side to N pixels first"},
      {"out", OPT_STRING, &a.out, "PNG of the decoded sample, a grid for several"},
      {"codes-out", OPT_STRING, &a.codes_out,
       "codes as .npy, [h, w] for one sample, else [n, h, w]"},
  };
  cli_status st = cli_parse(CMD, "Samples code grids from a GPT, optionally decoded to images.",
                            argc, argv, opts, sizeof opts / sizeof opts[0]);
  if (st != CLI_OK) return st == CLI_HELP ? 0 : 1;
  if (a.num < 1 || a.num > SAMPLE_MAX_NUM)
    return cli_fail(CMD, "--num must be in [1, %d] (got %ld)", SAMPLE_MAX_NUM, a.num);
  if (a.seed < 0) return cli_fail(CMD, "--seed must be >= 0 (got %ld)", a.seed);
  if (a.resize < 0 || a.resize > 16384) return cli_fail(CMD, "--resize must be in [0, 16384]");
  if (a.grid && a.size) return cli_fail(CMD, "give --grid or --size, not both");
  if (a.cls && a.prompt) return cli_fail(CMD, "give --class or --prompt, not both");
  if (a.out && !cli_dir_writable(a.out))
    return cli_fail(CMD, "%s: directory missing or not writable", a.out);
  if (a.codes_out && !cli_dir_writable(a.codes_out))
    return cli_fail(CMD, "%s: directory missing or not writable", a.codes_out);
  sample_run r = {0};
  int rc = run(&a, &r);
  run_free(&r);
  return rc;
}
