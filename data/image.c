#include "data/image.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image.h>
#include <stb_image_resize.h>
#include <stb_image_write.h>

#include "core/atomic_file.h"
#include "core/error.h"

// Decoding a huge image could exhaust memory; no real input is near this.
#define IMAGE_MAX_PIXELS (1 << 28)

int image_load(image_rgb *img, const char *path) {
  memset(img, 0, sizeof *img);
  FILE *fp = fopen(path, "rb");
  if (!fp) return vqgpt_error("%s: cannot open image: %s", path, strerror(errno));
  int w, h, comp;
  if (!stbi_info_from_file(fp, &w, &h, &comp)) {
    fclose(fp);
    return vqgpt_error("%s: not a readable image (%s)", path, stbi_failure_reason());
  }
  if ((long long)w * h > IMAGE_MAX_PIXELS) {
    fclose(fp);
    return vqgpt_error("%s: image too large (%dx%d)", path, w, h);
  }
  uint8_t *rgb = stbi_load_from_file(fp, &w, &h, &comp, 3);
  fclose(fp);
  if (!rgb) return vqgpt_error("%s: cannot decode image (%s)", path, stbi_failure_reason());
  img->w = w;
  img->h = h;
  img->rgb = rgb;
  return 0;
}

void image_free(image_rgb *img) {
  // Pixels come from stb (stbi_load) or malloc; stb uses the C allocator.
  free(img->rgb);
  img->rgb = NULL;
  img->w = img->h = 0;
}

static void write_to_file(void *ctx, void *data, int size) {
  fwrite(data, 1, (size_t)size, (FILE *)ctx);
}

int image_save_png(const image_rgb *img, const char *path) {
  atomic_file af;
  if (atomic_file_open(&af, path)) return -1;
  if (!stbi_write_png_to_func(write_to_file, af.fp, img->w, img->h, 3, img->rgb, img->w * 3)) {
    atomic_file_abort(&af);
    return vqgpt_error("%s: PNG encoding failed", path);
  }
  return atomic_file_commit(&af);
}

static inline float to_model(uint8_t v) { return (float)v / 127.5f - 1.0f; }

static inline uint8_t to_pixel(float x) {
  if (!(x > -1.0f)) x = -1.0f;  // also maps NaN to black rather than undefined
  if (x > 1.0f) x = 1.0f;
  return (uint8_t)lrintf((x + 1.0f) * 127.5f);
}

void image_to_tensor(const image_rgb *img, float *x) {
  image_crop_to_tensor(img, 0, 0, img->w, img->h, 0, x);
}

void image_crop_to_tensor(const image_rgb *img, int x0, int y0, int size_w, int size_h, int flip,
                          float *x) {
  size_t plane = (size_t)size_w * size_h;
  for (int y = 0; y < size_h; y++)
    for (int i = 0; i < size_w; i++) {
      int sx = x0 + (flip ? size_w - 1 - i : i);
      const uint8_t *p = img->rgb + ((size_t)(y0 + y) * img->w + sx) * 3;
      for (int c = 0; c < 3; c++) x[c * plane + (size_t)y * size_w + i] = to_model(p[c]);
    }
}

void image_from_tensor(image_rgb *img, const float *x) {
  size_t plane = (size_t)img->w * img->h;
  for (size_t i = 0; i < plane; i++)
    for (int c = 0; c < 3; c++) img->rgb[i * 3 + c] = to_pixel(x[c * plane + i]);
}

int image_resize(image_rgb *out, const image_rgb *in, int w, int h) {
  memset(out, 0, sizeof *out);
  if (w <= 0 || h <= 0 || (long long)w * h > IMAGE_MAX_PIXELS)
    return vqgpt_error("invalid resize target %dx%d", w, h);
  out->rgb = malloc((size_t)w * h * 3);
  if (!out->rgb) return vqgpt_error("out of memory resizing to %dx%d", w, h);
  out->w = w;
  out->h = h;
  if (!stbir_resize_uint8(in->rgb, in->w, in->h, 0, out->rgb, w, h, 0, 3)) {
    image_free(out);
    return vqgpt_error("resize to %dx%d failed", w, h);
  }
  return 0;
}

int image_grid(image_rgb *out, const float *xs, int n, int h, int w, int cols) {
  const int border = 2;
  if (cols < 1) cols = 1;
  if (cols > n) cols = n;
  int rows = (n + cols - 1) / cols;
  out->w = cols * w + (cols + 1) * border;
  out->h = rows * h + (rows + 1) * border;
  out->rgb = malloc((size_t)out->w * out->h * 3);
  if (!out->rgb) return vqgpt_error("out of memory for a %dx%d grid", out->w, out->h);
  memset(out->rgb, 255, (size_t)out->w * out->h * 3);
  size_t plane = (size_t)h * w;
  for (int k = 0; k < n; k++) {
    int ox = border + (k % cols) * (w + border), oy = border + (k / cols) * (h + border);
    const float *x = xs + (size_t)k * 3 * plane;
    for (int y = 0; y < h; y++)
      for (int i = 0; i < w; i++)
        for (int c = 0; c < 3; c++)
          out->rgb[((size_t)(oy + y) * out->w + ox + i) * 3 + c] = to_pixel(x[c * plane + (size_t)y * w + i]);
  }
  return 0;
}
