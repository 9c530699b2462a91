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
#include "cli/vqgan_io.h"
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

static vqgan *load_model(const char *cmd, const char *path) {
  vqgan *m = vqgpt_vqgan_load(path);
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
  snprintf(summary, sizeof summary, "Encode an image into its grid of codebook indices.\n%s",
           SIZE_RULE);
  cli_status st = cli_parse("encode", summary, argc, argv, opts, sizeof opts / sizeof opts[0]);
  if (st != CLI_OK) return st == CLI_HELP ? 0 : 1;
  if (!cli_require("encode", "vqgan", a.vqgan) || !cli_require("encode", "image", a.image) ||
      !cli_require("encode", "out", a.out))
    return 1;
  vqgan *m = load_model("encode", a.vqgan);
  if (!m) return 1;
  int32_t *codes = NULL;
  int h, w;
  int rc = vqgan_io_encode_file(m, a.image, a.crop, a.resize, &codes, &h, &w, NULL);
  if (!rc) {
    int64_t shape[2] = {h, w};
    rc = vqgpt_npy_write_i32(a.out, codes, 2, shape);
  }
  if (!rc) fprintf(stderr, "encoded %s into %dx%d codes -> %s\n", a.image, w, h, a.out);
  free(codes);
  vqgpt_vqgan_free(m);
  return rc ? cli_fail("encode", "%s", vqgpt_last_error()) : 0;
}

int cmd_decode(int argc, char **argv) {
  stage1_args a = {0};
  cli_opt opts[] = {
      {"vqgan", OPT_STRING, &a.vqgan, "VQGAN model (.safetensors)"},
      {"codes", OPT_STRING, &a.codes, "codes (.npy, int32/int64 [h, w] or [n, h, w])"},
      {"out", OPT_STRING, &a.out, "output PNG (a grid when there are several code grids)"},
  };
  cli_status st = cli_parse("decode", "Decode a grid of codebook indices into an image.", argc,
                            argv, opts, sizeof opts / sizeof opts[0]);
  if (st != CLI_OK) return st == CLI_HELP ? 0 : 1;
  if (!cli_require("decode", "vqgan", a.vqgan) || !cli_require("decode", "codes", a.codes) ||
      !cli_require("decode", "out", a.out))
    return 1;
  vqgan *m = load_model("decode", a.vqgan);
  if (!m) return 1;
  int32_t *codes = NULL;
  int ndim = 0;
  int64_t shape[3] = {0, 0, 0};
  int rc = vqgpt_npy_read_i32(a.codes, &codes, &ndim, shape);
  int n = 1, h = 0, w = 0, K = vqgpt_vqgan_get_config(m)->n_embed;
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
      rc = vqgpt_error("%s: code %d at index %zu is outside the codebook [0, %d)", a.codes,
                       codes[i], i, K);
  if (!rc) rc = vqgan_io_decode_to_png(m, codes, n, h, w, a.out);
  if (!rc) fprintf(stderr, "decoded %d grid(s) of %dx%d codes -> %s\n", n, w, h, a.out);
  free(codes);
  vqgpt_vqgan_free(m);
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
  snprintf(summary, sizeof summary, "Encode an image and decode it again (prints the PSNR).\n%s",
           SIZE_RULE);
  cli_status st = cli_parse("reconstruct", summary, argc, argv, opts, sizeof opts / sizeof opts[0]);
  if (st != CLI_OK) return st == CLI_HELP ? 0 : 1;
  if (!cli_require("reconstruct", "vqgan", a.vqgan) ||
      !cli_require("reconstruct", "image", a.image) || !cli_require("reconstruct", "out", a.out))
    return 1;
  vqgan *m = load_model("reconstruct", a.vqgan);
  if (!m) return 1;
  int32_t *codes = NULL;
  int h, w;
  image_rgb in = {0};
  int rc = vqgan_io_encode_file(m, a.image, a.crop, a.resize, &codes, &h, &w, &in);
  if (!rc) rc = vqgan_io_decode_to_png(m, codes, 1, h, w, a.out);
  if (!rc) {
    image_rgb out;
    if (vqgpt_image_load(&out, a.out) == 0) {
      double se = 0;
      size_t n = (size_t)in.w * in.h * 3;
      for (size_t i = 0; i < n; i++)
        se += ((double)in.rgb[i] - out.rgb[i]) * ((double)in.rgb[i] - out.rgb[i]);
      double mse = se / n;
      fprintf(stderr, "reconstructed %s (%dx%d, %dx%d codes) -> %s, PSNR %.2f dB\n", a.image, in.w,
              in.h, w, h, a.out, mse > 0 ? 10.0 * log10(255.0 * 255.0 / mse) : 99.0);
      vqgpt_image_free(&out);
    }
  }
  vqgpt_image_free(&in);
  free(codes);
  vqgpt_vqgan_free(m);
  return rc ? cli_fail("reconstruct", "%s", vqgpt_last_error()) : 0;
}
