// vqgpt train-gpt: encodes an image folder once with a frozen VQGAN (random crops, and flips
// unless captions could name sides; cached as .npy beside the output) and trains the GPT on the
// code grids: unconditional, class-conditional (sub-folders) or text-conditional (a caption file
// beside each image), with optional condition dropout for guidance; progress on stderr, validation
// loss, checkpoints and exact resume.
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/args.h"
#include "core/clock.h"
#include "core/dist.h"
#include "cli/commands.h"
#include "cli/models.h"
#include "cli/folder_report.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "data/npy.h"
#include "stage1_vqgan/vqgan.h"
#include "stage2_transformer/gpt_train.h"
#include "tokenizer/prompt.h"

#define CMD "train-gpt"
#define ENCODE_BATCH 8

static void fmt_duration(char *buf, size_t n, double s) {
  if (!(s >= 0) || s > 1e7)
    snprintf(buf, n, "?");
  else if (s < 60)
    snprintf(buf, n, "%.0fs", s);
  else if (s < 3600)
    snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
  else
    snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

static bool file_exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

// 64-bit hash of a file's bytes (word-wise FNV-1a variant): the cache key names the exact VQGAN.
static int hash_file(const char *path, uint64_t *out) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return vqgpt_error("%s: cannot read", path);
  uint64_t h = 0xcbf29ce484222325ULL;
  static uint8_t buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, fp)) > 0) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      memcpy(&w, buf + i, 8);
      h = (h ^ w) * 0x100000001b3ULL;
    }
    for (; i < n; i++) h = (h ^ buf[i]) * 0x100000001b3ULL;
  }
  int err = ferror(fp);
  fclose(fp);
  if (err) return vqgpt_error("%s: read error", path);
  *out = h;
  return 0;
}

// Everything the cached codes depend on, as one line of text. `data_settings`: how the images
// are cropped, scaled and mirrored (the text the checkpoint records too).
static char *cache_key(const char *vqgan_path, const image_folder *f, bool classes, uint64_t seed,
                       const char *data_settings) {
  uint64_t vh = 0, lh = 0xcbf29ce484222325ULL;
  if (hash_file(vqgan_path, &vh)) return NULL;
  for (size_t i = 0; i < f->n_images; i++) {
    struct stat sb;
    if (stat(f->paths[i], &sb)) {
      vqgpt_error("%s: cannot stat", f->paths[i]);
      return NULL;
    }
    char line[64];
    snprintf(line, sizeof line, "|%lld|%lld|%d", (long long)sb.st_size, (long long)sb.st_mtime,
             f->labels[i]);
    for (const char *p = f->paths[i]; *p; p++) lh = (lh ^ (uint8_t)*p) * 0x100000001b3ULL;
    for (const char *p = line; *p; p++) lh = (lh ^ (uint8_t)*p) * 0x100000001b3ULL;
  }
  char *key = malloc(512);
  if (!key) {
    vqgpt_error("out of memory");
    return NULL;
  }
  snprintf(key, 512,
           "vqgpt-codes 1 vqgan=%016" PRIx64 " images=%zu list=%016" PRIx64
           " classes=%d seed=%" PRIu64 " %s\n",
           vh, f->n_images, lh, classes ? f->n_classes : 0, seed, data_settings);
  return key;
}

static char *read_text(const char *path) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  char *s = calloc(1, 1024);
  if (s && fread(s, 1, 1023, fp) == 0) s[0] = '\0';
  fclose(fp);
  return s;
}

static int write_text(const char *path, const char *text) {
  atomic_file af;
  if (vqgpt_atomic_file_open(&af, path)) return -1;
  fputs(text, af.fp);
  return vqgpt_atomic_file_commit(&af);
}

typedef struct {
  int32_t *codes;    // (n, h, w)
  int32_t *labels;   // (n) or NULL
  int32_t *sources;  // (n) each grid's image, an index into the folder scan
  int n, h, w, n_classes;
} code_set;

static void code_set_free(code_set *cs) {
  free(cs->codes);
  free(cs->labels);
  free(cs->sources);
  memset(cs, 0, sizeof *cs);
}

// Loads the cached codes if their key matches; returns 1 when loaded, 0 when absent or stale.
// Files that could not be read were skipped when encoding: up to n_max grids, `crops` per image.
static int load_cache(code_set *cs, const char *key, const char *key_path, const char *codes_path,
                      const char *labels_path, const char *sources_path, int h, int w, int n_max,
                      long crops) {
  char *old = read_text(key_path);
  bool match = old && !strcmp(old, key);
  free(old);
  if (!match) return 0;
  int ndim;
  int64_t shape[NPY_MAX_DIMS];
  if (vqgpt_npy_read_i32(codes_path, &cs->codes, &ndim, shape)) return 0;
  if (ndim != 3 || shape[0] < 1 || shape[0] > n_max || shape[0] % crops || shape[1] != h ||
      shape[2] != w) {
    code_set_free(cs);
    return 0;
  }
  int n = (int)shape[0];
  if (vqgpt_npy_read_i32(sources_path, &cs->sources, &ndim, shape) || ndim != 1 || shape[0] != n) {
    code_set_free(cs);
    return 0;
  }
  for (int i = 0; i < n; i++)
    if (cs->sources[i] < 0 || cs->sources[i] >= n_max / crops) {
      code_set_free(cs);
      return 0;
    }
  if (labels_path) {
    if (vqgpt_npy_read_i32(labels_path, &cs->labels, &ndim, shape) || ndim != 1 || shape[0] != n) {
      code_set_free(cs);
      return 0;
    }
  }
  cs->n = n;
  cs->h = h;
  cs->w = w;
  return 1;
}

// Crops (and with `flip` mirrors half of them) and encodes every image `crops` times; writes the
// cache (codes, labels, then the key last, so an interrupted write is never mistaken for a valid
// cache).
static int encode_folder(code_set *cs, vqgan *vq, const char *dir, const image_folder *scan,
                         bool classes, long crops, bool flip, uint64_t seed, int scale, int crop_w,
                         int crop_h, const char *key, const char *key_path, const char *codes_path,
                         const char *labels_path, const char *sources_path) {
  int f = vqgpt_vqgan_factor(vq), h = crop_h / f, w = crop_w / f;
  size_t per = (size_t)3 * crop_w * crop_h;
  image_dataset ds;
  fprintf(stderr, "loading images from %s (%s) ...\n", dir,
          flip ? "half the crops mirrored" : "none mirrored");
  if (vqgpt_image_dataset_load(&ds, dir, scale, crop_w, crop_h)) return -1;
  cli_report_folder(CMD, dir, &ds.folder);
  size_t n = ds.n * (size_t)crops;
  if (n > INT32_MAX / ((size_t)h * w)) {
    vqgpt_image_dataset_free(&ds);
    return vqgpt_error("too many crops (%zu)", n);
  }
  cs->codes = malloc(n * h * w * sizeof(int32_t));
  cs->labels = classes ? malloc(n * sizeof(int32_t)) : NULL;
  cs->sources = malloc(n * sizeof(int32_t));
  float *x = malloc((size_t)ENCODE_BATCH * per * sizeof(float));  // (B, 3, crop_h, crop_w)
  int rc = -1;
  if (!cs->codes || (classes && !cs->labels) || !cs->sources || !x) {
    vqgpt_error("out of memory for %zu code grids", n);
    goto done;
  }
  // The images loaded are the scan's, in its order, less the unreadable ones.
  for (size_t i = 0, k = 0; i < ds.n; i++, k++) {
    while (k < scan->n_images && strcmp(scan->paths[k], ds.folder.paths[i])) k++;
    if (k == scan->n_images) {
      vqgpt_error("%s: the folder changed while loading it", dir);
      goto done;
    }
    for (long c = 0; c < crops; c++) cs->sources[i * crops + c] = (int32_t)k;
  }
  uint64_t rng = vqgpt_rng_hash(seed, 0xC0DE);
  double t0 = vqgpt_seconds();
  bool tty = isatty(STDERR_FILENO) != 0;
  for (size_t i0 = 0; i0 < n; i0 += ENCODE_BATCH) {
    int B = (int)(n - i0 < ENCODE_BATCH ? n - i0 : ENCODE_BATCH);
    for (int b = 0; b < B; b++) {
      size_t img = (i0 + b) / (size_t)crops;
      vqgpt_image_dataset_random_crop(&ds, img, &rng, flip, x + (size_t)b * per);
      if (classes) cs->labels[i0 + b] = ds.folder.labels[img];
    }
    if (vqgpt_vqgan_encode(vq, x, B, crop_h, crop_w, cs->codes + i0 * h * w, NULL, NULL)) goto done;
    if (tty || i0 + B == n)
      fprintf(stderr, "%sencoding: %zu/%zu crops (%.1f/s)%s", tty ? "\r" : "", i0 + B, n,
              (i0 + B) / (vqgpt_seconds() - t0), i0 + B == n ? "\n" : "");
  }
  int64_t shape[3] = {(int64_t)n, h, w}, lshape[1] = {(int64_t)n};
  if (vqgpt_npy_write_i32(codes_path, cs->codes, 3, shape)) goto done;
  if (classes && vqgpt_npy_write_i32(labels_path, cs->labels, 1, lshape)) goto done;
  if (vqgpt_npy_write_i32(sources_path, cs->sources, 1, lshape)) goto done;
  if (write_text(key_path, key)) goto done;
  cs->n = (int)n;
  cs->h = h;
  cs->w = w;
  rc = 0;
done:
  if (rc) code_set_free(cs);
  free(x);
  vqgpt_image_dataset_free(&ds);
  return rc;
}

// "WxH" in pixels.
static bool parse_size(const char *s, int *w, int *h) {
  char tail;
  return sscanf(s, "%dx%d%c", w, h, &tail) == 2 && *w >= 8 && *h >= 8 && *w <= 4096 && *h <= 4096;
}

// The prompt tokens of every image of the scan: its caption, tokenized, truncated to the
// model's length (counted and reported). Runs before any encoding, so a missing or bad caption
// stops the run at once.
static int build_prompts(int32_t **out, const gpt_config *cfg, const vqgpt_tokenizer *tok,
                         const image_folder *folder) {
  int L = cfg->text_len, n_truncated = 0;
  int32_t *prompts = malloc(folder->n_images * L * sizeof(int32_t) + 1);
  if (!prompts) return vqgpt_error("out of memory");
  for (size_t i = 0; i < folder->n_images; i++) {
    char *text;
    bool truncated;
    if (vqgpt_caption_read(folder->paths[i], &text)) {
      free(prompts);
      return -1;
    }
    int e = vqgpt_prompt_encode(cfg, tok, text, true, prompts + i * L, &truncated);
    free(text);
    if (e) {
      char why[512];
      snprintf(why, sizeof why, "%s", vqgpt_last_error());
      free(prompts);
      return vqgpt_error("%s: caption: %s", folder->paths[i], why);
    }
    n_truncated += truncated;
  }
  fprintf(stderr, "captions: %zu read, %d truncated to %d tokens\n", folder->n_images, n_truncated,
          L);
  *out = prompts;
  return 0;
}

// Writes s as a JSON string at q (room for 6 bytes per character + 2); returns the end.
static char *put_json_string(char *q, const char *s) {
  *q++ = '"';
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    q += (*p == '"' || *p == '\\') ? sprintf(q, "\\%c", *p)
         : *p < 0x20               ? sprintf(q, "\\u%04x", *p)
                                   : sprintf(q, "%c", *p);
  *q++ = '"';
  *q = '\0';
  return q;
}

// A class's name from its folder's: "3_dress" is "dress" (a numeric prefix orders the folders,
// which give the class ids in sorted order), other names stay as they are.
static const char *class_name(const char *folder) {
  const char *p = folder;
  while (*p >= '0' && *p <= '9') p++;
  return p > folder && *p == '_' && p[1] ? p + 1 : folder;
}

// The card of a new model: the VQGAN it is trained with, the class names, the tokenizer.
static int make_card(gpt_card *card, const char *vqgan_path, const vqgan *vq,
                     const image_folder *folder, bool classes, const vqgpt_tokenizer *tok) {
  const char *base = strrchr(vqgan_path, '/');
  base = base ? base + 1 : vqgan_path;
  size_t n = strlen(base) * 6 + 128;
  card->vqgan = malloc(n);
  if (!card->vqgan) return vqgpt_error("out of memory");
  char *q = card->vqgan;
  q += sprintf(q, "{\"file\": ");
  q = put_json_string(q, base);
  sprintf(q, ", \"fingerprint\": \"%016" PRIx64 "\", \"n_embed\": %d}", vqgpt_vqgan_fingerprint(vq),
          vqgpt_vqgan_get_config(vq)->n_embed);
  if (classes) {
    size_t cap = 16;
    for (int c = 0; c < folder->n_classes; c++) cap += strlen(folder->class_names[c]) * 6 + 4;
    card->class_names = malloc(cap);
    if (!card->class_names) return vqgpt_error("out of memory");
    q = card->class_names;
    *q++ = '[';
    for (int c = 0; c < folder->n_classes; c++) {
      if (c) q += sprintf(q, ", ");
      q = put_json_string(q, class_name(folder->class_names[c]));
    }
    sprintf(q, "]");
  }
  if (tok) {
    size_t nb;
    const void *bytes = vqgpt_tokenizer_model_bytes(tok, &nb);
    card->tokenizer = malloc(nb);
    if (!card->tokenizer) return vqgpt_error("out of memory");
    memcpy(card->tokenizer, bytes, nb);
    card->tokenizer_bytes = nb;
  }
  return 0;
}

// Each grid's prompt: its image's (the grids' sources index the images).
static int prompts_per_grid(int32_t **prompts, const code_set *cs, int L) {
  int32_t *per = malloc((size_t)cs->n * L * sizeof(int32_t));
  if (!per) return vqgpt_error("out of memory");
  for (int k = 0; k < cs->n; k++)
    memcpy(per + (size_t)k * L, *prompts + (size_t)cs->sources[k] * L, (size_t)L * sizeof(int32_t));
  free(*prompts);
  *prompts = per;
  return 0;
}

static char *with_suffix(const char *path, const char *suffix) {
  size_t n = strlen(path) + strlen(suffix) + 1;
  char *s = malloc(n);
  if (s) snprintf(s, n, "%s%s", path, suffix);
  return s;
}

int cmd_train_gpt(int argc, char **argv) {
  const char *vqgan_path = NULL, *data = NULL, *out = NULL, *size_s = NULL, *tok_path = NULL,
             *init_path = NULL;
  bool classes = false, captions = false, resume = false, overwrite = false, no_flip = false;
  long scale = 0, text_len = 32;
  double cond_drop = 0;
  long steps = 1000, batch = 8, warmup = 100, seed = 0, crops = 1, n_layer = 8, n_head = 8,
       n_embd = 256, ckpt_every = 500, eval_every = 250, log_every = 10;
  double lr = 3e-4, min_lr = 3e-5, weight_decay = 0.01, grad_clip = 1.0, pkeep = 1.0,
         val_fraction = 0.05, embd_pdrop = 0, resid_pdrop = 0, attn_pdrop = 0;
  // Given on the command line (a resumed model must have these values; they are its own).
  bool text_len_given = false, n_layer_given = false, n_head_given = false, n_embd_given = false,
       embd_pdrop_given = false, resid_pdrop_given = false, attn_pdrop_given = false;
  cli_opt opts[] = {
      {"vqgan", OPT_STRING, &vqgan_path, "frozen VQGAN that encodes the images, required"},
      {"data", OPT_STRING, &data, "image folder (PNG/JPEG, searched recursively), required"},
      {"out", OPT_STRING, &out, "GPT model and checkpoint (.safetensors), required"},
      {"classes", OPT_FLAG, &classes, "class-conditional: labels are the first-level sub-folders"},
      {"captions", OPT_FLAG, &captions, "text-conditional: a.txt beside a.png holds its caption"},
      {"tokenizer", OPT_STRING, &tok_path,
       "SentencePiece .model for --captions (stored in the GPT)"},
      {"text-len", OPT_INT, &text_len,
       "prompt tokens of a new text model (longer captions are cut)", .given = &text_len_given},
      {"cond-drop", OPT_FLOAT, &cond_drop,
       "share of steps' samples with the null condition (guidance)"},
      {"size", OPT_STRING, &size_s, "crop WxH in pixels (default: the VQGAN's resolution, square)"},
      {"scale", OPT_INT, &scale, "scale each image's shorter side to this first (0: the crop's)"},
      {"resume", OPT_FLAG, &resume, "continue training the checkpoint at --out"},
      {"overwrite", OPT_FLAG, &overwrite, "start afresh even if --out exists"},
      {"init", OPT_STRING, &init_path,
       "start from this model's weights (fine-tuning: new optimizer, schedule and settings)"},
      {"steps", OPT_INT, &steps, "total optimizer steps"},
      {"batch", OPT_INT, &batch, "sequences per step"},
      {"lr", OPT_FLOAT, &lr, "peak learning rate"},
      {"min-lr", OPT_FLOAT, &min_lr, "learning rate at the end of the cosine decay"},
      {"warmup", OPT_INT, &warmup, "linear warm-up steps"},
      {"weight-decay", OPT_FLOAT, &weight_decay, "AdamW weight decay on Linear weights"},
      {"grad-clip", OPT_FLOAT, &grad_clip, "max global gradient norm (0: off)"},
      {"pkeep", OPT_FLOAT, &pkeep, "probability of keeping each input code (reference pkeep)"},
      {"embd-pdrop", OPT_FLOAT, &embd_pdrop, "embedding dropout (new models)",
       .given = &embd_pdrop_given},
      {"resid-pdrop", OPT_FLOAT, &resid_pdrop, "residual dropout (new models)",
       .given = &resid_pdrop_given},
      {"attn-pdrop", OPT_FLOAT, &attn_pdrop, "attention dropout (new models)",
       .given = &attn_pdrop_given},
      {"val-fraction", OPT_FLOAT, &val_fraction, "share of the crops held out for validation"},
      {"seed", OPT_INT, &seed, "random seed (init, crops, split, order, corruption, dropout)"},
      {"crops", OPT_INT, &crops, "random crops encoded per image"},
      {"no-flip", OPT_FLAG, &no_flip,
       "never mirror the crops (always so with --captions: a caption can say left or right)"},
      {"n-layer", OPT_INT, &n_layer, "transformer blocks (new models)", .given = &n_layer_given},
      {"n-head", OPT_INT, &n_head, "attention heads (new models)", .given = &n_head_given},
      {"n-embd", OPT_INT, &n_embd, "embedding width (new models)", .given = &n_embd_given},
      {"checkpoint-every", OPT_INT, &ckpt_every, "steps between checkpoints (0: only at the end)"},
      {"eval-every", OPT_INT, &eval_every, "steps between validation passes (0: only at the end)"},
      {"log-every", OPT_INT, &log_every, "steps between progress lines"},
  };
  cli_status st = cli_parse(CMD, "Trains the GPT on the VQGAN codes of an image folder.", argc,
                            argv, opts, sizeof opts / sizeof opts[0]);
  if (st != CLI_OK) return st == CLI_HELP ? 0 : 1;
  if (!cli_require(CMD, "vqgan", vqgan_path) || !cli_require(CMD, "data", data) ||
      !cli_require(CMD, "out", out))
    return 1;
  if (crops < 1 || crops > 1000) return cli_fail(CMD, "--crops must be in [1, 1000]");
  if (classes && captions) return cli_fail(CMD, "give --classes or --captions, not both");
  if (resume && init_path) return cli_fail(CMD, "give --resume or --init, not both");
  // A model trained further keeps the shape, conditioning and tokenizer it has.
  const bool from_model = resume || init_path;
  const char *model_path = resume ? out : init_path;
  if (from_model && tok_path)
    return cli_fail(CMD, "--tokenizer: %s carries its own tokenizer", model_path);
  if (captions && !tok_path && !from_model)
    return cli_fail(CMD, "--captions needs --tokenizer (train one with vqgpt train-tokenizer)");
  if (text_len < 1 || text_len > 1024) return cli_fail(CMD, "--text-len must be in [1, 1024]");
  if (scale < 0 || scale > 4096) return cli_fail(CMD, "--scale must be in [0, 4096]");
  int crop_w = 0, crop_h = 0;
  if (size_s && !parse_size(size_s, &crop_w, &crop_h))
    return cli_fail(CMD, "--size expects WxH in pixels, each in [8, 4096] (got '%s')", size_s);
  if (n_layer < 1 || n_layer > 256 || n_head < 1 || n_embd < 1 || n_embd > 16384 || n_embd % n_head)
    return cli_fail(CMD, "--n-layer/--n-head/--n-embd invalid (n-head must divide n-embd)");
  if (ckpt_every < 0 || eval_every < 0 || log_every < 1)
    return cli_fail(CMD, "--checkpoint-every/--eval-every must be >= 0, --log-every >= 1");
  if (resume && overwrite) return cli_fail(CMD, "give --resume or --overwrite, not both");

  if (batch > 65536 || batch < 1)
    return cli_fail(CMD, "--batch must be in [1, 65536] (got %ld)", batch);
  gpt_train_options o;
  vqgpt_gpt_train_options_default(&o);
  o.batch_size = (int)batch;
  o.steps = steps;
  o.lr = (float)lr;
  o.min_lr = (float)min_lr;
  o.warmup = warmup;
  o.weight_decay = (float)weight_decay;
  o.grad_clip = (float)grad_clip;
  o.pkeep = (float)pkeep;
  o.val_fraction = (float)val_fraction;
  o.cond_drop = (float)cond_drop;
  o.seed = (uint64_t)seed;
  o.ranks = vqgpt_dist_size();  // mpirun -np N: each rank trains on its share of every batch
  const bool leader = vqgpt_dist_rank() == 0;  // logs and writes the checkpoints
  if (vqgpt_gpt_train_options_check(&o)) return cli_fail(CMD, "%s", vqgpt_last_error());
  if (!(embd_pdrop >= 0 && embd_pdrop < 1) || !(resid_pdrop >= 0 && resid_pdrop < 1) ||
      !(attn_pdrop >= 0 && attn_pdrop < 1))
    return cli_fail(CMD, "dropout probabilities must be in [0, 1)");
  if (!cli_output_ok(CMD, out)) return 1;
  if (resume && !file_exists(out)) return cli_fail(CMD, "--resume: %s does not exist", out);
  if (!resume && !overwrite && file_exists(out))
    return cli_fail(CMD, "%s exists: pass --resume to continue it or --overwrite to replace it",
                    out);

  int rc = 1;
  vqgan *vq = NULL;
  gpt *m = NULL;
  code_set cs = {0};
  gpt_trainer tr;
  bool tr_init = false;
  char *key = NULL;
  vqgpt_tokenizer *tok = NULL;
  int32_t *prompts = NULL;
  gpt_card card = {0};
  char *codes_path = with_suffix(out, ".codes.npy"), *labels_path = with_suffix(out, ".labels.npy"),
       *key_path = with_suffix(out, ".codes.key"), *sources_path = with_suffix(out, ".sources.npy");
  if (!codes_path || !labels_path || !key_path || !sources_path) {
    cli_fail(CMD, "out of memory");
    goto done;
  }
  vq = vqgpt_vqgan_load(vqgan_path);
  if (!vq) {
    cli_fail(CMD, "%s", vqgpt_last_error());
    goto done;
  }
  const vqgan_config *vc = vqgpt_vqgan_get_config(vq);
  int f = vqgpt_vqgan_factor(vq);
  if (!size_s) crop_w = crop_h = vc->resolution;
  if (crop_w % f || crop_h % f) {
    cli_fail(CMD, "--size %dx%d is not a multiple of the VQGAN's downsampling factor %d", crop_w,
             crop_h, f);
    goto done;
  }
  if (!scale) scale = crop_w < crop_h ? crop_w : crop_h;
  int h = crop_h / f, w = crop_w / f;

  // A model trained further must fit this VQGAN and this kind of data before any encoding starts.
  if (from_model) {
    m = vqgpt_gpt_load(model_path);
    if (!m) {
      cli_fail(CMD, "%s", vqgpt_last_error());
      goto done;
    }
    const gpt_config *c = &m->cfg;
    gpt_cond_kind want = classes ? GPT_COND_CLASS : captions ? GPT_COND_TEXT : GPT_COND_NONE;
    if (c->cond != want) {
      static const char *kinds[] = {"unconditional (no --classes, no --captions)",
                                    "class-conditional (--classes)",
                                    "text-conditional (--captions)"};
      cli_fail(CMD, "%s is %s but this run is %s", model_path, kinds[c->cond], kinds[want]);
      goto done;
    }
    // Its shape is its own: a flag asking for another is refused, not ignored.
    const struct {
      bool given;
      double asked, has;
      const char *flag;
    } shape[] = {{text_len_given, (double)text_len, c->text_len, "--text-len"},
                 {n_layer_given, (double)n_layer, c->n_layer, "--n-layer"},
                 {n_head_given, (double)n_head, c->n_head, "--n-head"},
                 {n_embd_given, (double)n_embd, c->n_embd, "--n-embd"},
                 {embd_pdrop_given, embd_pdrop, c->embd_pdrop, "--embd-pdrop"},
                 {resid_pdrop_given, resid_pdrop, c->resid_pdrop, "--resid-pdrop"},
                 {attn_pdrop_given, attn_pdrop, c->attn_pdrop, "--attn-pdrop"}};
    for (size_t k = 0; k < sizeof shape / sizeof shape[0]; k++)
      if (shape[k].given && (float)shape[k].asked != (float)shape[k].has) {
        cli_fail(CMD,
                 "%s is %g for this run but %s has %g (a model trained further keeps its shape)",
                 shape[k].flag, shape[k].asked, model_path, shape[k].has);
        goto done;
      }
    if (c->vocab_size < vc->n_embed || c->n_codes < vc->n_embed) {
      cli_fail(CMD, "the GPT's vocabulary (%d tokens) does not cover the VQGAN codebook (%d codes)",
               c->vocab_size, vc->n_embed);
      goto done;
    }
    if (c->grid_h && (c->grid_h != h || c->grid_w != w)) {
      cli_fail(CMD, "%s was trained on %dx%d code grids but --size gives %dx%d", model_path,
               c->grid_h, c->grid_w, h, w);
      goto done;
    }
  }

  // The tokenizer (before any encoding): given, or the one the text model trained further carries.
  if (captions) {
    tok = from_model ? cli_gpt_tokenizer(m, model_path) : vqgpt_tokenizer_load_file(tok_path);
    if (!tok) {
      cli_fail(CMD, "%s", vqgpt_last_error());
      goto done;
    }
  }

  // The code cache.
  image_folder folder;
  if (vqgpt_image_folder_scan(&folder, data)) {
    cli_fail(CMD, "%s", vqgpt_last_error());
    goto done;
  }
  int n_classes = folder.n_classes;
  if (folder.n_images == 0) {
    vqgpt_image_folder_free(&folder);
    cli_fail(CMD, "%s: no images found", data);
    goto done;
  }
  if (classes && n_classes < 2) {
    vqgpt_image_folder_free(&folder);
    cli_fail(CMD, "--classes needs images in at least two sub-folders of %s", data);
    goto done;
  }
  if (from_model && classes && m->cfg.n_classes < n_classes) {
    vqgpt_image_folder_free(&folder);
    cli_fail(CMD, "%s has %d classes but %s has %d sub-folders", model_path, m->cfg.n_classes, data,
             n_classes);
    goto done;
  }
  // A mirrored image would contradict a caption naming what is on the left and on the right.
  const bool flip = !no_flip && !captions;
  // How the codes are made: the cache's key and the checkpoint record it (a resume must match).
  char data_settings[96];
  snprintf(data_settings, sizeof data_settings, "--size %dx%d --scale %ld --crops %ld%s", crop_w,
           crop_h, scale, crops, flip ? "" : " --no-flip");
  o.data_settings = data_settings;
  key = cache_key(vqgan_path, &folder, classes, o.seed, data_settings);
  int n_max = (int)(folder.n_images * (size_t)crops);
  gpt_config text_cfg = {.cond = GPT_COND_TEXT,
                         .n_codes = vc->n_embed,
                         .text_len = (int)text_len,
                         .text_vocab = tok ? vqgpt_tokenizer_vocab_size(tok) : 0};
  if (captions && build_prompts(&prompts, from_model ? &m->cfg : &text_cfg, tok, &folder)) {
    vqgpt_image_folder_free(&folder);
    cli_fail(CMD, "%s", vqgpt_last_error());
    goto done;
  }
  if (!from_model && make_card(&card, vqgan_path, vq, &folder, classes, tok)) {
    vqgpt_image_folder_free(&folder);
    cli_fail(CMD, "%s", vqgpt_last_error());
    goto done;
  }
  if (!key) {
    vqgpt_image_folder_free(&folder);
    cli_fail(CMD, "%s", vqgpt_last_error());
    goto done;
  }
  // Several ranks: rank 0 encodes (or finds the cache) first; the others then reuse its cache
  // (a shared filesystem) or, on another machine, encode the same codes themselves.
  if (!leader) vqgpt_dist_barrier();
  int cached = load_cache(&cs, key, key_path, codes_path, classes ? labels_path : NULL,
                          sources_path, h, w, n_max, crops);
  if (cached) {
    fprintf(stderr, "reusing cached codes %s (%d grids of %dx%d)\n", codes_path, cs.n, h, w);
  } else if (encode_folder(&cs, vq, data, &folder, classes, crops, flip, o.seed, (int)scale, crop_w,
                           crop_h, key, key_path, codes_path, labels_path, sources_path)) {
    vqgpt_image_folder_free(&folder);
    cli_fail(CMD, "%s", vqgpt_last_error());
    goto done;
  }
  if (leader) vqgpt_dist_barrier();
  vqgpt_image_folder_free(&folder);
  if (captions && prompts_per_grid(&prompts, &cs, from_model ? m->cfg.text_len : (int)text_len)) {
    cli_fail(CMD, "%s", vqgpt_last_error());
    goto done;
  }
  cs.n_classes = classes ? n_classes : 0;

  // The model.
  if (!from_model) {
    gpt_config cfg = {0};
    cfg.vocab_size = vc->n_embed;
    // A null class after the classes for guidance; text tokens and the pad after the codes.
    int cond_tokens = classes ? n_classes + (cond_drop > 0) : 0;
    if (cond_tokens > cfg.vocab_size) cfg.vocab_size = cond_tokens;
    if (captions) {
      cfg.text_len = (int)text_len;
      cfg.text_vocab = vqgpt_tokenizer_vocab_size(tok);
      cfg.vocab_size = vc->n_embed + cfg.text_vocab + 1;
    }
    cfg.null_class = classes && cond_drop > 0 ? n_classes : 0;
    cfg.block_size = (captions ? (int)text_len : 1) + h * w - 1;
    cfg.n_layer = (int)n_layer;
    cfg.n_head = (int)n_head;
    cfg.n_embd = (int)n_embd;
    cfg.embd_pdrop = (float)embd_pdrop;
    cfg.resid_pdrop = (float)resid_pdrop;
    cfg.attn_pdrop = (float)attn_pdrop;
    cfg.cond = classes ? GPT_COND_CLASS : captions ? GPT_COND_TEXT : GPT_COND_NONE;
    cfg.n_classes = classes ? n_classes : 0;
    cfg.sos_token = 0;
    cfg.n_codes = vc->n_embed;
    cfg.grid_h = h;
    cfg.grid_w = w;
    uint64_t init_rng = vqgpt_rng_hash(o.seed, 0x1417);
    m = vqgpt_gpt_create(&cfg, &init_rng);
    if (!m) {
      cli_fail(CMD, "%s", vqgpt_last_error());
      goto done;
    }
    m->card = card;  // the model owns it now
    memset(&card, 0, sizeof card);
  }
  gpt_dataset d = {
      .codes = cs.codes, .labels = cs.labels, .prompts = prompts, .n = cs.n, .h = cs.h, .w = cs.w};
  if (vqgpt_gpt_trainer_init(&tr, m, &d, &o)) {
    cli_fail(CMD, "%s", vqgpt_last_error());
    goto done;
  }
  tr_init = true;
  if (resume) {
    if (vqgpt_gpt_trainer_resume(&tr, out)) {
      cli_fail(CMD, "%s", vqgpt_last_error());
      goto done;
    }
    fprintf(stderr, "resuming %s at step %ld of %ld\n", out, tr.step, tr.opt.steps);
  } else if (init_path) {
    fprintf(stderr, "starting from the weights of %s\n", init_path);
  }
  fprintf(stderr,
          "GPT: %d layers, %d heads, %d wide, vocab %d, %.2fM parameters; %d training / %d "
          "validation grids of %dx%d%s\n",
          m->cfg.n_layer, m->cfg.n_head, m->cfg.n_embd, m->cfg.vocab_size, m->n_params / 1e6,
          tr.n_train, tr.n_val, h, w,
          classes    ? ", class-conditional"
          : captions ? ", text-conditional"
                     : "");

  int T = tr.T;
  double t_start = vqgpt_seconds(), t_log = t_start;
  long step0 = tr.step, log_step = tr.step;
  double loss_acc = 0;
  int loss_n = 0;
  while (tr.step < tr.opt.steps) {
    gpt_step_stats ss;
    if (vqgpt_gpt_trainer_step(&tr, &ss)) {
      cli_fail(CMD, "%s", vqgpt_last_error());
      goto done;
    }
    loss_acc += ss.loss;
    loss_n++;
    long s = tr.step;
    if (s % log_every == 0 || s == tr.opt.steps) {
      double t = vqgpt_seconds();
      double tps = (double)(s - log_step) * tr.opt.batch_size * T / (t - t_log);
      double eta = (t - t_start) / (double)(s - step0) * (double)(tr.opt.steps - s);
      char eta_s[32];
      fmt_duration(eta_s, sizeof eta_s, eta);
      fprintf(stderr, "step %ld/%ld  loss %.4f  lr %.2e  |g| %.3f  %.0f tokens/s  ETA %s\n", s,
              tr.opt.steps, loss_acc / loss_n, ss.lr, ss.grad_norm, tps, eta_s);
      loss_acc = 0;
      loss_n = 0;
      t_log = t;
      log_step = s;
    }
    bool last = s == tr.opt.steps;
    if ((eval_every > 0 && s % eval_every == 0) || last) {
      double vl;
      if (vqgpt_gpt_trainer_validate(&tr, &vl)) {
        cli_fail(CMD, "%s", vqgpt_last_error());
        goto done;
      }
      if (tr.n_val > 0) fprintf(stderr, "step %ld  validation loss %.4f\n", s, vl);
    }
    if (leader && ((ckpt_every > 0 && s % ckpt_every == 0) || last)) {
      if (vqgpt_gpt_trainer_save(&tr, out)) {
        cli_fail(CMD, "%s", vqgpt_last_error());
        goto done;
      }
      fprintf(stderr, "saved %s (step %ld)\n", out, s);
    }
  }
  if (tr.step == step0) {
    // Nothing to train (a resumed run already at --steps, or --steps 0): still leave a model.
    if (!resume && leader && vqgpt_gpt_trainer_save(&tr, out)) {
      cli_fail(CMD, "%s", vqgpt_last_error());
      goto done;
    }
    fprintf(stderr, "%s: %ld of %ld steps done, nothing to train\n", out, tr.step, tr.opt.steps);
  }
  rc = 0;
done:
  if (tr_init) vqgpt_gpt_trainer_free(&tr);
  vqgpt_gpt_card_free(&card);
  vqgpt_tokenizer_free(tok);
  free(prompts);
  vqgpt_gpt_free(m);
  vqgpt_vqgan_free(vq);
  code_set_free(&cs);
  free(key);
  free(codes_path);
  free(labels_path);
  free(key_path);
  free(sources_path);
  return rc;
}
