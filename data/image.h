// Image files <-> model tensors. Pixels map to the model as x = u8 / 127.5 - 1; outputs map
// back with clamp to [-1, 1], then round((x + 1) * 127.5) (DESIGN.md).
#ifndef VQGPT_IMAGE_H
#define VQGPT_IMAGE_H

#include <stdint.h>

typedef struct {
  int w, h;       // pixels
  uint8_t *rgb;   // (H, W, 3) interleaved
} image_rgb;

// Reads PNG/JPEG/... (anything stb_image decodes) as 8-bit RGB. Errors name the path.
int image_load(image_rgb *img, const char *path);
void image_free(image_rgb *img);
// Writes PNG atomically (temporary file + rename); no partial file on failure.
int image_save_png(const image_rgb *img, const char *path);

// x (3, H, W) from the whole image.
void image_to_tensor(const image_rgb *img, float *x);
// img (already sized w x h) from x (3, h, w).
void image_from_tensor(image_rgb *img, const float *x);
// x (3, size_h, size_w) from the window at (x0, y0), optionally mirrored left-right.
void image_crop_to_tensor(const image_rgb *img, int x0, int y0, int size_w, int size_h, int flip,
                          float *x);
// A new image resampled to w x h (stb_image_resize, its default filters).
int image_resize(image_rgb *out, const image_rgb *in, int w, int h);
// Tiles n images (3, h, w) into a grid of `cols` columns with a 2-pixel white border.
int image_grid(image_rgb *out, const float *xs, int n, int h, int w, int cols);

#endif
