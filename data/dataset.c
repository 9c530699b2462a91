#include "data/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"

// Decodes and rescales one image; the error (naming the file) is left in err.
static int load_one(image_rgb *out, const char *path, int size, int min_w, int min_h, char *err,
                    size_t cap) {
  image_rgb img;
  if (image_load(&img, path)) {
    snprintf(err, cap, "%s", vqgpt_last_error());
    return -1;
  }
  int shorter = img.w < img.h ? img.w : img.h;
  double s = (double)size / shorter;
  int w = img.w < img.h ? size : (int)(img.w * s + 0.5);
  int h = img.w < img.h ? (int)(img.h * s + 0.5) : size;
  if (w < min_w) w = min_w;  // a crop wider than the scaled image stretches it to fit
  if (h < min_h) h = min_h;
  int rc = image_resize(out, &img, w, h);
  if (rc) snprintf(err, cap, "%s: %s", path, vqgpt_last_error());
  image_free(&img);
  return rc;
}

int image_dataset_load(image_dataset *d, const char *dir, int scale, int crop_w, int crop_h) {
  memset(d, 0, sizeof *d);
  if (crop_w <= 0 || crop_h <= 0) crop_w = crop_h = scale;
  if (scale < 1 || scale > 4096 || crop_w > 4096 || crop_h > 4096)
    return vqgpt_error("invalid training size %d (crop %dx%d)", scale, crop_w, crop_h);
  if (image_folder_scan(&d->folder, dir)) return -1;
  d->n = d->folder.n_images;
  d->scale = scale;
  d->crop_w = crop_w;
  d->crop_h = crop_h;
  d->images = calloc(d->n, sizeof *d->images);
  if (!d->images) {
    image_folder_free(&d->folder);
    return vqgpt_error("out of memory loading %s", dir);
  }
  int failed = 0;
  char err[1024] = "";
#pragma omp parallel for schedule(dynamic)
  for (size_t i = 0; i < d->n; i++) {
    char my_err[1024];
    if (load_one(&d->images[i], d->folder.paths[i], scale, crop_w, crop_h, my_err, sizeof my_err)) {
#pragma omp critical
      {
        if (!failed) snprintf(err, sizeof err, "%s", my_err);
        failed = 1;
      }
    }
  }
  if (failed) {
    image_dataset_free(d);
    return vqgpt_error("%s", err);
  }
  return 0;
}

void image_dataset_free(image_dataset *d) {
  for (size_t i = 0; d->images && i < d->n; i++) image_free(&d->images[i]);
  free(d->images);
  image_folder_free(&d->folder);
  memset(d, 0, sizeof *d);
}

void image_dataset_random_crop(const image_dataset *d, size_t i, uint64_t *rng, float *x) {
  const image_rgb *img = &d->images[i];
  int x0 = (int)rng_below(rng, (uint64_t)(img->w - d->crop_w + 1));
  int y0 = (int)rng_below(rng, (uint64_t)(img->h - d->crop_h + 1));
  int flip = rng_uniform(rng) < 0.5f;
  image_crop_to_tensor(img, x0, y0, d->crop_w, d->crop_h, flip, x);
}

void image_dataset_center_crop(const image_dataset *d, size_t i, float *x) {
  const image_rgb *img = &d->images[i];
  image_crop_to_tensor(img, (img->w - d->crop_w) / 2, (img->h - d->crop_h) / 2, d->crop_w,
                       d->crop_h, 0, x);
}
