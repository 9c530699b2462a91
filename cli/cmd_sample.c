// vqgpt sample: draws code grids from a GPT (KV-cached, all --num samples as one batch) and
// writes them as .npy and/or, decoded by the VQGAN, as a PNG grid.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "core/clock.h"
#include "cli/commands.h"
#include "core/error.h"
#include "data/image.h"
#include "data/npy.h"
#include "sampling/sampler.h"
#include "stage1_vqgan/vqgan.h"
#include "stage2_transformer/gpt.h"

#define CMD "sample"
#define SAMPLE_MAX_NUM 4096

// "AxB" with two positive integers.
static bool parse_pair(const char *s, int *a, int *b) {
  char *end;
  long x = strtol(s, &end, 10);
  if (end == s || (*end != 'x' && *end != 'X')) return false;
  const char *t = end + 1;
  long y = strtol(t, &end, 10);
  if (end == t || *end || x < 1 || y < 1 || x > 65536 || y > 65536) return false;
  *a = (int)x;
  *b = (int)y;
  return true;
}


typedef struct {
  double t0;
  int total_tokens, B;
  bool tty;
} progress_state;

// A self-overwriting line on a terminal; only the final line when stderr is a file or pipe.
static void progress(void *ctx, int done, int total) {
  progress_state *p = ctx;
  if (done != total && (done % 16 != 0 || !p->tty)) return;
  double dt = vqgpt_seconds() - p->t0;
  fprintf(stderr, "%ssampling: %d/%d positions, %.1f tokens/s%s", p->tty ? "\r" : "", done, total,
          dt > 0 ? p->B * done / dt : 0.0, done == total ? "\n" : "");
}

int cmd_sample(int argc, char **argv) {
  const char *gpt_path = NULL, *vqgan_path = NULL, *grid_s = NULL, *size_s = NULL, *out = NULL,
             *codes_out = NULL;
  long cls = -1, top_k = 0, num = 1, seed = 0;
  double temperature = 1.0, top_p = 1.0;
  bool greedy = false;
  cli_opt opts[] = {
      {"gpt", OPT_STRING, &gpt_path, "GPT model (.safetensors), required"},
      {"vqgan", OPT_STRING, &vqgan_path, "VQGAN to decode the codes into images"},
      {"class", OPT_INT, &cls, "class id for a class-conditional GPT"},
      {"grid", OPT_STRING, &grid_s, "code grid HxW in tokens (default: the model's)"},
      {"size", OPT_STRING, &size_s, "image size WxH in pixels (needs --vqgan)"},
      {"temperature", OPT_FLOAT, &temperature, "divide the logits by T > 0"},
      {"top-k", OPT_INT, &top_k, "keep the K most likely tokens (1..vocab; 0 keeps all)"},
      {"top-p", OPT_FLOAT, &top_p, "keep the smallest set of tokens with probability >= P, in (0, 1]"},
      {"greedy", OPT_FLAG, &greedy, "take the most likely token instead of drawing"},
      {"seed", OPT_INT, &seed, "random seed"},
      {"num", OPT_INT, &num, "number of samples, drawn as one batch"},
      {"out", OPT_STRING, &out, "PNG of the decoded sample, a grid for several (needs --vqgan)"},
      {"codes-out", OPT_STRING, &codes_out, "codes as .npy, [h, w] for one sample, else [n, h, w]"},
  };
  cli_status st = cli_parse(CMD, "Samples code grids from a GPT, optionally decoded to images.",
                            argc, argv, opts, sizeof opts / sizeof opts[0]);
  if (st != CLI_OK) return st == CLI_HELP ? 0 : 1;
  if (!cli_require(CMD, "gpt", gpt_path)) return 1;
  if (!out && !codes_out) return cli_fail(CMD, "nothing to write: give --out and/or --codes-out");
  if (out && !vqgan_path) return cli_fail(CMD, "--out needs --vqgan to decode the codes");
  if (size_s && !vqgan_path) return cli_fail(CMD, "--size needs --vqgan (it counts pixels)");
  if (grid_s && size_s) return cli_fail(CMD, "give --grid or --size, not both");
  if (out && !cli_dir_writable(out)) return cli_fail(CMD, "%s: directory missing or not writable", out);
  if (codes_out && !cli_dir_writable(codes_out))
    return cli_fail(CMD, "%s: directory missing or not writable", codes_out);
  if (num < 1 || num > SAMPLE_MAX_NUM)
    return cli_fail(CMD, "--num must be in [1, %d] (got %ld)", SAMPLE_MAX_NUM, num);
  if (!(temperature > 0)) return cli_fail(CMD, "--temperature must be > 0 (got %g)", temperature);
  if (!(top_p > 0 && top_p <= 1)) return cli_fail(CMD, "--top-p must be in (0, 1] (got %g)", top_p);
  if (top_k < 0) return cli_fail(CMD, "--top-k must be in [1, vocab] (got %ld)", top_k);
  int gh = 0, gw = 0, sw = 0, sh = 0;
  if (grid_s && !parse_pair(grid_s, &gh, &gw))
    return cli_fail(CMD, "--grid expects HxW, e.g. 16x16 (got '%s')", grid_s);
  if (size_s && !parse_pair(size_s, &sw, &sh))
    return cli_fail(CMD, "--size expects WxH, e.g. 256x256 (got '%s')", size_s);

  int rc = 1;
  vqgan *vq = NULL;
  int32_t *codes = NULL;
  float *pixels = NULL;
  image_rgb grid = {0};
  gpt *m = gpt_load(gpt_path);
  if (!m) return cli_fail(CMD, "%s", vqgpt_last_error());
  const gpt_config *c = &m->cfg;
  int n_allowed = c->n_codes, factor = 0;
  if (vqgan_path) {
    vq = vqgan_load(vqgan_path);
    if (!vq) {
      cli_fail(CMD, "%s", vqgpt_last_error());
      goto done;
    }
    int n_embed = vqgan_get_config(vq)->n_embed;
    factor = vqgan_factor(vq);
    if (c->vocab_size < n_embed) {
      cli_fail(CMD, "the GPT's vocabulary (%d tokens) does not cover the VQGAN codebook (%d codes)",
               c->vocab_size, n_embed);
      goto done;
    }
    if (n_allowed > n_embed) n_allowed = n_embed;  // every drawn code must decode
  }
  // Conditioning.
  int32_t cond_token;
  if (c->cond == GPT_COND_CLASS) {
    if (cls < 0 && cls != -1) {
      cli_fail(CMD, "--class %ld out of range: the model has classes 0..%d", cls, c->n_classes - 1);
      goto done;
    }
    if (cls == -1) {
      cli_fail(CMD, "the GPT is class-conditional: give --class 0..%d", c->n_classes - 1);
      goto done;
    }
    if (cls >= c->n_classes) {
      cli_fail(CMD, "--class %ld out of range: the model has classes 0..%d", cls, c->n_classes - 1);
      goto done;
    }
    cond_token = (int32_t)cls;
  } else {
    if (cls != -1) {
      cli_fail(CMD, "--class given but the GPT is unconditional");
      goto done;
    }
    cond_token = c->sos_token;
  }
  // Grid.
  if (size_s) {
    if (sw % factor || sh % factor) {
      cli_fail(CMD, "--size %dx%d is not a multiple of the VQGAN's downsampling factor %d", sw, sh,
               factor);
      goto done;
    }
    gh = sh / factor;
    gw = sw / factor;
  } else if (!grid_s) {
    if (c->grid_h < 1) {
      cli_fail(CMD, "the GPT does not record its grid: give --grid HxW");
      goto done;
    }
    gh = c->grid_h;
    gw = c->grid_w;
  }
  long n_tokens = (long)gh * gw;
  if (gpt_n_cond(c) + n_tokens - 1 > c->block_size) {
    cli_fail(CMD,
             "a %dx%d grid needs %ld positions but the GPT's block_size is %d "
             "(sliding-window sampling is not implemented)",
             gh, gw, gpt_n_cond(c) + n_tokens - 1, c->block_size);
    goto done;
  }
  if (top_k > c->vocab_size) {
    cli_fail(CMD, "--top-k must be in [1, %d] (got %ld)", c->vocab_size, top_k);
    goto done;
  }
  sampling_params sp = {(float)temperature, (int)top_k, (float)top_p, greedy};

  int B = (int)num;
  codes = malloc((size_t)B * n_tokens * sizeof(int32_t));  // (B, h, w)
  int32_t *cond = malloc((size_t)B * sizeof(int32_t));
  if (!codes || !cond) {
    free(cond);
    cli_fail(CMD, "out of memory");
    goto done;
  }
  for (int b = 0; b < B; b++) cond[b] = cond_token;
  progress_state ps = {vqgpt_seconds(), (int)(B * n_tokens), B, isatty(STDERR_FILENO) != 0};
  sampler_job job;
  sampler_job_default(&job);
  job.B = B;
  job.n_cond = 1;
  job.cond = cond;
  job.grid_h = job.window_h = gh;
  job.grid_w = job.window_w = gw;
  job.n_allowed = n_allowed;
  job.sp = sp;
  job.seed = (uint64_t)seed;
  int src = sampler_run(m, &job, codes, progress, &ps);
  free(cond);
  if (src) {
    cli_fail(CMD, "%s", vqgpt_last_error());
    goto done;
  }

  // Decode and write the image first: a failure there leaves no file at all.
  if (out) {
    int H = gh * factor, W = gw * factor;
    pixels = malloc((size_t)B * 3 * H * W * sizeof(float));  // (B, 3, H, W)
    if (!pixels) {
      cli_fail(CMD, "out of memory for %d decoded images", B);
      goto done;
    }
    for (int b = 0; b < B; b++)
      if (vqgan_decode(vq, codes + (size_t)b * n_tokens, 1, gh, gw,
                       pixels + (size_t)b * 3 * H * W)) {
        cli_fail(CMD, "%s", vqgpt_last_error());
        goto done;
      }
    // One sample is written as the image itself (as `decode` would), several as a grid.
    int made;
    if (B == 1) {
      grid.w = W;
      grid.h = H;
      grid.rgb = malloc((size_t)W * H * 3);
      made = grid.rgb ? 0 : vqgpt_error("out of memory for a %dx%d image", W, H);
      if (!made) image_from_tensor(&grid, pixels);
    } else {
      made = image_grid(&grid, pixels, B, H, W, (int)ceil(sqrt((double)B)));
    }
    if (made || image_save_png(&grid, out)) {
      cli_fail(CMD, "%s", vqgpt_last_error());
      goto done;
    }
    fprintf(stderr, "wrote %s (%d sample%s of %dx%d pixels)\n", out, B, B > 1 ? "s" : "", W, H);
  }
  if (codes_out) {
    int64_t shape[3] = {B, gh, gw};
    int w = B == 1 ? npy_write_i32(codes_out, codes, 2, shape + 1)
                   : npy_write_i32(codes_out, codes, 3, shape);
    if (w) {
      cli_fail(CMD, "%s", vqgpt_last_error());
      goto done;
    }
    fprintf(stderr, "wrote %s (%d x %dx%d codes)\n", codes_out, B, gh, gw);
  }
  rc = 0;
done:
  image_free(&grid);
  free(pixels);
  free(codes);
  vqgan_free(vq);
  gpt_free(m);
  return rc;
}
