// An image folder loaded for training: every image decoded once (in parallel), its shorter
// side scaled to `size` as the reference's SmallestMaxSize, and square crops drawn from it.
#ifndef VQGPT_DATASET_H
#define VQGPT_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "data/folder.h"
#include "data/image.h"

typedef struct {
  image_folder folder;  // paths, labels, class names
  image_rgb *images;    // n: shorter side == size
  size_t n;
  int size;
} image_dataset;

int image_dataset_load(image_dataset *d, const char *dir, int size);
void image_dataset_free(image_dataset *d);

// x (3, size, size) in [-1, 1]: a uniformly random crop, mirrored with probability 1/2.
void image_dataset_random_crop(const image_dataset *d, size_t i, uint64_t *rng, float *x);
// x (3, size, size): the center crop, for validation.
void image_dataset_center_crop(const image_dataset *d, size_t i, float *x);

#endif
