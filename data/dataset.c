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
  if (vqgpt_image_load(&img, path)) {
    snprintf(err, cap, "%s", vqgpt_last_error());
    return -1;
  }
  int shorter = img.w < img.h ? img.w : img.h;
  if (shorter < 1) {  // vqgpt_image_load never returns one; a division by zero below if it did
    vqgpt_image_free(&img);
    snprintf(err, cap, "%s: empty image", path);
    return -1;
  }
  double s = (double)size / shorter;
  int w = img.w < img.h ? size : (int)(img.w * s + 0.5);
  int h = img.w < img.h ? (int)(img.h * s + 0.5) : size;
  if (w < min_w) w = min_w;  // a crop wider than the scaled image stretches it to fit
  if (h < min_h) h = min_h;
  int rc = vqgpt_image_resize(out, &img, w, h);
  if (rc) snprintf(err, cap, "%s: %s", path, vqgpt_last_error());
  vqgpt_image_free(&img);
  return rc;
}

// Moves the images that failed (errs[i] set) out of the lists, their messages to skipped.
static int drop_failed(image_dataset *d, char **errs) {
  image_folder *f = &d->folder;
  size_t n_bad = 0;
  for (size_t i = 0; i < d->n; i++) n_bad += errs[i] != NULL;
  if (!n_bad) return 0;
  char **skipped = realloc(f->skipped, (f->n_skipped + n_bad) * sizeof *skipped);
  if (!skipped) return vqgpt_error("out of memory");
  f->skipped = skipped;
  size_t good = 0;
  for (size_t i = 0; i < d->n; i++) {
    if (errs[i]) {
      free(f->paths[i]);
      f->skipped[f->n_skipped++] = errs[i];
      errs[i] = NULL;
      continue;
    }
    d->images[good] = d->images[i];
    f->paths[good] = f->paths[i];
    f->labels[good] = f->labels[i];
    good++;
  }
  d->n = f->n_images = good;
  return 0;
}

int vqgpt_image_dataset_load(image_dataset *d, const char *dir, int scale, int crop_w, int crop_h) {
  memset(d, 0, sizeof *d);
  if (crop_w <= 0 || crop_h <= 0) crop_w = crop_h = scale;
  if (scale < 1 || scale > 4096 || crop_w > 4096 || crop_h > 4096)
    return vqgpt_error("invalid training size %d (crop %dx%d)", scale, crop_w, crop_h);
  if (vqgpt_image_folder_scan(&d->folder, dir)) return -1;
  size_t n = d->n = d->folder.n_images;
  d->scale = scale;
  d->crop_w = crop_w;
  d->crop_h = crop_h;
  d->images = calloc(d->n + 1, sizeof *d->images);
  char **errs = calloc(d->n + 1, sizeof *errs);
  if (!d->images || !errs) {
    free(errs);
    vqgpt_image_dataset_free(d);
    return vqgpt_error("out of memory loading %s", dir);
  }
  int out_of_memory = 0;
#pragma omp parallel for schedule(dynamic)
  for (size_t i = 0; i < d->n; i++) {
    char my_err[1024];
    if (load_one(&d->images[i], d->folder.paths[i], scale, crop_w, crop_h, my_err, sizeof my_err) &&
        !(errs[i] = strdup(my_err))) {
#pragma omp atomic write
      out_of_memory = 1;
    }
  }
  int rc = out_of_memory ? vqgpt_error("out of memory loading %s", dir) : drop_failed(d, errs);
  for (size_t i = 0; i < n; i++) free(errs[i]);  // those not moved to skipped
  free(errs);
  size_t bad = d->folder.n_skipped, total = d->n + bad;
  if (!rc && (d->n == 0 || bad > IMAGE_DATASET_MAX_BAD_SHARE * total))
    rc = vqgpt_error("%s: %zu of %zu image files cannot be read (more than %.0f%%), e.g. %s", dir,
                     bad, total, IMAGE_DATASET_MAX_BAD_SHARE * 100, d->folder.skipped[0]);
  if (rc) vqgpt_image_dataset_free(d);
  return rc;
}

void vqgpt_image_dataset_free(image_dataset *d) {
  for (size_t i = 0; d->images && i < d->n; i++) vqgpt_image_free(&d->images[i]);
  free(d->images);
  vqgpt_image_folder_free(&d->folder);
  memset(d, 0, sizeof *d);
}

void vqgpt_image_dataset_random_crop(const image_dataset *d, size_t i, uint64_t *rng, bool may_flip,
                                     float *x) {
  const image_rgb *img = &d->images[i];
  int x0 = (int)vqgpt_rng_below(rng, (uint64_t)(img->w - d->crop_w + 1));
  int y0 = (int)vqgpt_rng_below(rng, (uint64_t)(img->h - d->crop_h + 1));
  int flip = vqgpt_rng_uniform(rng) < 0.5f && may_flip;
  if (x) vqgpt_image_crop_to_tensor(img, x0, y0, d->crop_w, d->crop_h, flip, x);
}

void vqgpt_image_dataset_center_crop(const image_dataset *d, size_t i, float *x) {
  const image_rgb *img = &d->images[i];
  vqgpt_image_crop_to_tensor(img, (img->w - d->crop_w) / 2, (img->h - d->crop_h) / 2, d->crop_w,
                             d->crop_h, 0, x);
}
