// An image folder loaded for training: every image decoded once (in parallel), its shorter
// side scaled to `scale` as the reference's SmallestMaxSize, and crops of crop_w x crop_h
// drawn from it (square in the reference; pairs of items or panoramas want other shapes).
// Files that cannot be read are skipped, up to a share (below).
#ifndef VQGPT_DATASET_H
#define VQGPT_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data/folder.h"
#include "data/image.h"

typedef struct {
  image_folder folder;  // paths, labels, class names of the images loaded; skipped files
  image_rgb *images;    // n: shorter side == scale, each side >= the crop's
  size_t n;
  int scale;           // shorter side after scaling, pixels
  int crop_w, crop_h;  // crop size, pixels
} image_dataset;

// A file that cannot be read (not PNG/JPEG, corrupt, truncated, too large, a FIFO named
// x.png, ...) is skipped and listed in folder.skipped ("<path>: <reason>", for the caller to
// report); the load fails only when more than this share of the image files is bad, or all.
#define IMAGE_DATASET_MAX_BAD_SHARE 0.10

// Afterwards folder.paths/labels/n_images describe the n images loaded, in the same order.
// crop_w, crop_h <= 0 mean square crops of `scale`.
int vqgpt_image_dataset_load(image_dataset *d, const char *dir, int scale, int crop_w, int crop_h);
void vqgpt_image_dataset_free(image_dataset *d);

// x (3, crop_h, crop_w) in [-1, 1]: a uniformly random crop, mirrored with probability 1/2 when
// `may_flip` (the draw is made either way, so both settings take the same crops).
// x NULL: only the random draws (a data-parallel rank skipping another rank's row).
void vqgpt_image_dataset_random_crop(const image_dataset *d, size_t i, uint64_t *rng, bool may_flip,
                                     float *x);
// x (3, crop_h, crop_w): the center crop, for validation.
void vqgpt_image_dataset_center_crop(const image_dataset *d, size_t i, float *x);

#endif
