// Image files <-> code grids through a VQGAN, shared by the stage-1 commands and `sample`.
#ifndef VQGPT_CLI_VQGAN_IO_H
#define VQGPT_CLI_VQGAN_IO_H

#include <stdbool.h>
#include <stdint.h>

#include "data/image.h"
#include "stage1_vqgan/vqgan.h"

// Loads the image and brings it to a size the model takes: sides multiples of the factor f,
// else --crop (center-crop down to a multiple) or --resize N (shorter side to N, then crop).
int vqgan_io_prepare_image(image_rgb *img, const char *path, int f, bool crop, long resize);
// Encodes one image file into its (h, w) code grid (malloc'd into *codes); the prepared image
// is kept in img_out when given.
int vqgan_io_encode_file(vqgan *m, const char *path, bool crop, long resize, int32_t **codes,
                         int *h, int *w, image_rgb *img_out);
// Decodes n code grids (n, h, w) and writes them as one PNG (a grid when n > 1).
int vqgan_io_decode_to_png(vqgan *m, const int32_t *codes, int n, int h, int w, const char *out);

#endif
