// Image files <-> code grids through a VQGAN, shared by the stage-1 commands and `sample`.
#include "cli/vqgan_io.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/memory.h"

// Loads the image and brings it to a size the model takes, following SIZE_RULE.
int vqgan_io_prepare_image(image_rgb *img, const char *path, int f, bool crop, long resize) {
  if (vqgpt_image_load(img, path)) return -1;
  if (resize) {
    if (resize < f || resize % f || resize > 16384) {
      vqgpt_image_free(img);
      return vqgpt_error(
          "--resize %ld must be a positive multiple of the factor %d (at most 16384)", resize, f);
    }
    double s = (double)resize / (img->w < img->h ? img->w : img->h);
    int w = img->w < img->h ? (int)resize : (int)(img->w * s + 0.5);
    int h = img->w < img->h ? (int)(img->h * s + 0.5) : (int)resize;
    image_rgb scaled;
    int rc = vqgpt_image_resize(&scaled, img, w, h);
    vqgpt_image_free(img);
    if (rc) return vqgpt_error("%s: %s", path, vqgpt_last_error());
    *img = scaled;
    crop = true;
  }
  if (img->w % f == 0 && img->h % f == 0) return 0;
  if (!crop || img->w < f || img->h < f) {
    int w = img->w, h = img->h;
    vqgpt_image_free(img);
    return vqgpt_error(
        "%s: size %dx%d is not a multiple of the VQGAN's factor %d (use --crop or --resize)", path,
        w, h, f);
  }
  int w = img->w / f * f, h = img->h / f * f, x0 = (img->w - w) / 2, y0 = (img->h - h) / 2;
  image_rgb c = {w, h, malloc((size_t)w * h * 3)};
  if (!c.rgb) {
    vqgpt_image_free(img);
    return vqgpt_error("out of memory");
  }
  for (int y = 0; y < h; y++)
    memcpy(c.rgb + (size_t)y * w * 3, img->rgb + ((size_t)(y0 + y) * img->w + x0) * 3,
           (size_t)w * 3);
  vqgpt_image_free(img);
  *img = c;
  return 0;
}

// Encodes one image file into its (h, w) code grid.
int vqgan_io_encode_file(vqgan *m, const char *path, bool crop, long resize, int32_t **codes,
                         int *h, int *w, image_rgb *img_out) {
  const vqgan_config *cfg = vqgpt_vqgan_get_config(m);
  int f = vqgpt_vqgan_factor(m);
  image_rgb img;
  if (cfg->in_channels != 3)
    return vqgpt_error("the VQGAN takes %d channels, images have 3", cfg->in_channels);
  if (vqgan_io_prepare_image(&img, path, f, crop, resize)) return -1;
  float *x = malloc((size_t)3 * img.w * img.h * sizeof *x);
  *h = img.h / f;
  *w = img.w / f;
  *codes = malloc((size_t)*h * *w * sizeof **codes);
  int rc = (!x || !*codes) ? vqgpt_error("out of memory") : 0;
  if (!rc) {
    vqgpt_image_to_tensor(&img, x);
    rc = vqgpt_vqgan_encode(m, x, 1, img.h, img.w, *codes, NULL, NULL);
  }
  free(x);
  if (rc) {
    free(*codes);
    *codes = NULL;
  }
  if (img_out && !rc)
    *img_out = img;
  else
    vqgpt_image_free(&img);
  return rc;
}

// Decodes n code grids (n, h, w) and writes them as one PNG (a grid when n > 1).
int vqgan_io_decode_to_png(vqgan *m, const int32_t *codes, int n, int h, int w, const char *out) {
  int f = vqgpt_vqgan_factor(m);
  if (vqgpt_vqgan_get_config(m)->out_ch != 3)
    return vqgpt_error("the VQGAN outputs %d channels, PNG needs 3",
                       vqgpt_vqgan_get_config(m)->out_ch);
  size_t per = (size_t)3 * h * f * w * f;
  if (vqgpt_memory_check(per * n * (sizeof(float) + 1), "the decoded images")) return -1;
  float *x = malloc(per * n * sizeof *x);
  if (!x) return vqgpt_error("out of memory decoding %d grids of %dx%d", n, w, h);
  int rc = 0;
  for (int i = 0; i < n && !rc; i++)
    rc = vqgpt_vqgan_decode(m, codes + (size_t)i * h * w, 1, h, w, x + per * i);
  image_rgb img = {0};
  if (!rc) {
    if (n == 1) {
      img.w = w * f;
      img.h = h * f;
      img.rgb = malloc((size_t)img.w * img.h * 3);
      rc = img.rgb ? 0 : vqgpt_error("out of memory");
      if (!rc) vqgpt_image_from_tensor(&img, x);
    } else {
      int cols = 1;
      while (cols * cols < n) cols++;
      rc = vqgpt_image_grid(&img, x, n, h * f, w * f, cols);
    }
  }
  if (!rc) rc = vqgpt_image_save_png(&img, out);
  vqgpt_image_free(&img);
  free(x);
  return rc;
}
