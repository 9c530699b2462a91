// Stage-1 commands: encode (image -> codes), decode (codes -> image), reconstruct (both).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "data/image.h"
#include "data/npy.h"
#include "stage1_vqgan/vqgan.h"

static const char *SIZE_RULE =
    "Image sides must be multiples of the VQGAN's downsampling factor f. Otherwise pass\n"
    "--crop (center-crop each side down to a multiple of f) or --resize N (scale so the\n"
    "shorter side is N pixels, N a multiple of f, then center-crop the longer side to a\n"
    "multiple of f).";

typedef struct {
  const char *vqgan, *image, *codes, *out;
  bool crop;
  long resize;
} stage1_args;

// Loads the image and brings it to a size the model takes, following SIZE_RULE.
static int prepare_image(image_rgb *img, const char *path, int f, bool crop, long resize) {
  if (image_load(img, path)) return -1;
  if (resize) {
    if (resize < f || resize % f || resize > 16384) {
      image_free(img);
      return vqgpt_error("--resize %ld must be a positive multiple of the factor %d (at most 16384)", resize, f);
    }
    double s = (double)resize / (img->w < img->h ? img->w : img->h);
    int w = img->w < img->h ? (int)resize : (int)(img->w * s + 0.5);
    int h = img->w < img->h ? (int)(img->h * s + 0.5) : (int)resize;
    image_rgb scaled;
    int rc = image_resize(&scaled, img, w, h);
    image_free(img);
    if (rc) return vqgpt_error("%s: %s", path, vqgpt_last_error());
    *img = scaled;
    crop = true;
  }
  if (img->w % f == 0 && img->h % f == 0) return 0;
  if (!crop || img->w < f || img->h < f) {
    int w = img->w, h = img->h;
    image_free(img);
    return vqgpt_error("%s: size %dx%d is not a multiple of the VQGAN's factor %d (use --crop or --resize)",
                       path, w, h, f);
  }
  int w = img->w / f * f, h = img->h / f * f, x0 = (img->w - w) / 2, y0 = (img->h - h) / 2;
  image_rgb c = {w, h, malloc((size_t)w * h * 3)};
  if (!c.rgb) {
    image_free(img);
    return vqgpt_error("out of memory");
  }
  for (int y = 0; y < h; y++) memcpy(c.rgb + (size_t)y * w * 3, img->rgb + ((size_t)(y0 + y) * img->w + x0) * 3, (size_t)w * 3);
  image_free(img);
  *img = c;
  return 0;
}

// Encodes one image file into its (h, w) code grid.
static int encode_file(vqgan *m, const char *path, bool crop, long resize, int32_t **codes,
                       int *h, int *w, image_rgb *img_out) {
  const vqgan_config *cfg = vqgan_get_config(m);
  int f = vqgan_factor(m);
  image_rgb img;
  if (cfg->in_channels != 3) return vqgpt_error("the VQGAN takes %d channels, images have 3", cfg->in_channels);
  if (prepare_image(&img, path, f, crop, resize)) return -1;
  float *x = malloc((size_t)3 * img.w * img.h * sizeof *x);
  *h = img.h / f;
  *w = img.w / f;
  *codes = malloc((size_t)*h * *w * sizeof **codes);
  int rc = (!x || !*codes) ? vqgpt_error("out of memory") : 0;
  if (!rc) {
    image_to_tensor(&img, x);
    rc = vqgan_encode(m, x, 1, img.h, img.w, *codes, NULL, NULL);
  }
  free(x);
  if (rc) {
    free(*codes);
    *codes = NULL;
  }
  if (img_out && !rc)
    *img_out = img;
  else
    image_free(&img);
  return rc;
}

// Decodes n code grids (n, h, w) and writes them as one PNG (a grid when n > 1).
static int decode_to_png(vqgan *m, const int32_t *codes, int n, int h, int w, const char *out) {
  int f = vqgan_factor(m);
  if (vqgan_get_config(m)->out_ch != 3) return vqgpt_error("the VQGAN outputs %d channels, PNG needs 3", vqgan_get_config(m)->out_ch);
  size_t per = (size_t)3 * h * f * w * f;
  float *x = malloc(per * n * sizeof *x);
  if (!x) return vqgpt_error("out of memory decoding %d grids of %dx%d", n, w, h);
  int rc = 0;
  for (int i = 0; i < n && !rc; i++) rc = vqgan_decode(m, codes + (size_t)i * h * w, 1, h, w, x + per * i);
  image_rgb img = {0};
  if (!rc) {
    if (n == 1) {
      img.w = w * f;
      img.h = h * f;
      img.rgb = malloc((size_t)img.w * img.h * 3);
      rc = img.rgb ? 0 : vqgpt_error("out of memory");
      if (!rc) image_from_tensor(&img, x);
    } else {
      int cols = 1;
      while (cols * cols < n) cols++;
      rc = image_grid(&img, x, n, h * f, w * f, cols);
    }
  }
  if (!rc) rc = image_save_png(&img, out);
  image_free(&img);
  free(x);
  return rc;
}

static vqgan *load_model(const char *cmd, const char *path) {
  vqgan *m = vqgan_load(path);
  if (!m) cli_fail(cmd, "%s", vqgpt_last_error());
  return m;
}

int cmd_encode(int argc, char **argv) {
  stage1_args a = {0};
  cli_opt opts[] = {
      {"vqgan", OPT_STRING, &a.vqgan, "VQGAN model (.safetensors)"},
      {"image", OPT_STRING, &a.image, "input image (PNG/JPEG)"},
      {"out", OPT_STRING, &a.out, "output codes (.npy, int32 [h, w])"},
      {"crop", OPT_FLAG, &a.crop, "center-crop to a multiple of the factor"},
      {"resize", OPT_INT, &a.resize, "scale the shorter side to N pixels first (0: no)", 0, 16384},
  };
  char summary[1024];
  snprintf(summary, sizeof summary, "Encode an image into its grid of codebook indices.\n%s", SIZE_RULE);
  cli_status st = cli_parse("encode", summary, argc, argv, opts, sizeof opts / sizeof opts[0]);
  if (st != CLI_OK) return st == CLI_HELP ? 0 : 1;
  if (!cli_require("encode", "vqgan", a.vqgan) || !cli_require("encode", "image", a.image) ||
      !cli_require("encode", "out", a.out))
    return 1;
  vqgan *m = load_model("encode", a.vqgan);
  if (!m) return 1;
  int32_t *codes = NULL;
  int h, w;
  int rc = encode_file(m, a.image, a.crop, a.resize, &codes, &h, &w, NULL);
  if (!rc) {
    int64_t shape[2] = {h, w};
    rc = npy_write_i32(a.out, codes, 2, shape);
  }
  if (!rc) fprintf(stderr, "encoded %s into %dx%d codes -> %s\n", a.image, w, h, a.out);
  free(codes);
  vqgan_free(m);
  return rc ? cli_fail("encode", "%s", vqgpt_last_error()) : 0;
}

int cmd_decode(int argc, char **argv) {
  stage1_args a = {0};
  cli_opt opts[] = {
      {"vqgan", OPT_STRING, &a.vqgan, "VQGAN model (.safetensors)"},
      {"codes", OPT_STRING, &a.codes, "codes (.npy, int32/int64 [h, w] or [n, h, w])"},
      {"out", OPT_STRING, &a.out, "output PNG (a grid when there are several code grids)"},
  };
  cli_status st = cli_parse("decode", "Decode a grid of codebook indices into an image.", argc, argv,
                            opts, sizeof opts / sizeof opts[0]);
  if (st != CLI_OK) return st == CLI_HELP ? 0 : 1;
  if (!cli_require("decode", "vqgan", a.vqgan) || !cli_require("decode", "codes", a.codes) ||
      !cli_require("decode", "out", a.out))
    return 1;
  vqgan *m = load_model("decode", a.vqgan);
  if (!m) return 1;
  int32_t *codes = NULL;
  int ndim = 0;
  int64_t shape[3] = {0, 0, 0};
  int rc = npy_read_i32(a.codes, &codes, &ndim, shape);
  int n = 1, h = 0, w = 0, K = vqgan_get_config(m)->n_embed;
  if (!rc) {
    if (ndim == 2 || ndim == 3) {
      n = ndim == 3 ? (int)shape[0] : 1;
      h = (int)shape[ndim - 2];
      w = (int)shape[ndim - 1];
    }
    if ((ndim != 2 && ndim != 3) || n < 1 || h < 1 || w < 1 || n > 1024 || h > 1024 || w > 1024)
      rc = vqgpt_error("%s: codes must have shape [h, w] or [n, h, w] with sides 1..1024", a.codes);
  }
  for (size_t i = 0; !rc && i < (size_t)n * h * w; i++)
    if (codes[i] < 0 || codes[i] >= K)
      rc = vqgpt_error("%s: code %d at index %zu is outside the codebook [0, %d)", a.codes, codes[i], i, K);
  if (!rc) rc = decode_to_png(m, codes, n, h, w, a.out);
  if (!rc) fprintf(stderr, "decoded %d grid(s) of %dx%d codes -> %s\n", n, w, h, a.out);
  free(codes);
  vqgan_free(m);
  return rc ? cli_fail("decode", "%s", vqgpt_last_error()) : 0;
}

int cmd_reconstruct(int argc, char **argv) {
  stage1_args a = {0};
  cli_opt opts[] = {
      {"vqgan", OPT_STRING, &a.vqgan, "VQGAN model (.safetensors)"},
      {"image", OPT_STRING, &a.image, "input image (PNG/JPEG)"},
      {"out", OPT_STRING, &a.out, "output PNG"},
      {"crop", OPT_FLAG, &a.crop, "center-crop to a multiple of the factor"},
      {"resize", OPT_INT, &a.resize, "scale the shorter side to N pixels first (0: no)", 0, 16384},
  };
  char summary[1024];
  snprintf(summary, sizeof summary, "Encode an image and decode it again (prints the PSNR).\n%s", SIZE_RULE);
  cli_status st = cli_parse("reconstruct", summary, argc, argv, opts, sizeof opts / sizeof opts[0]);
  if (st != CLI_OK) return st == CLI_HELP ? 0 : 1;
  if (!cli_require("reconstruct", "vqgan", a.vqgan) || !cli_require("reconstruct", "image", a.image) ||
      !cli_require("reconstruct", "out", a.out))
    return 1;
  vqgan *m = load_model("reconstruct", a.vqgan);
  if (!m) return 1;
  int32_t *codes = NULL;
  int h, w;
  image_rgb in = {0};
  int rc = encode_file(m, a.image, a.crop, a.resize, &codes, &h, &w, &in);
  if (!rc) rc = decode_to_png(m, codes, 1, h, w, a.out);
  if (!rc) {
    image_rgb out;
    if (image_load(&out, a.out) == 0) {
      double se = 0;
      size_t n = (size_t)in.w * in.h * 3;
      for (size_t i = 0; i < n; i++) se += ((double)in.rgb[i] - out.rgb[i]) * ((double)in.rgb[i] - out.rgb[i]);
      double mse = se / n;
      fprintf(stderr, "reconstructed %s (%dx%d, %dx%d codes) -> %s, PSNR %.2f dB\n", a.image, in.w,
              in.h, w, h, a.out, mse > 0 ? 10.0 * log10(255.0 * 255.0 / mse) : 99.0);
      image_free(&out);
    }
  }
  image_free(&in);
  free(codes);
  vqgan_free(m);
  return rc ? cli_fail("reconstruct", "%s", vqgpt_last_error()) : 0;
}
