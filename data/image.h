// Image files <-> model tensors. Pixels map to the model as x = u8 / 127.5 - 1; outputs map
// back with clamp to [-1, 1], then round((x + 1) * 127.5) (DESIGN.md).
#ifndef VQGPT_IMAGE_H
#define VQGPT_IMAGE_H

#include <stdint.h>

typedef struct {
  int w, h;      // pixels
  uint8_t *rgb;  // (H, W, 3) interleaved
} image_rgb;

// Decoded images are refused, before any pixel memory is allocated, beyond these limits.
#define IMAGE_MAX_SIDE 16384         // pixels, each side
#define IMAGE_MAX_PIXELS (1L << 26)  // width * height (64 Mi, e.g. 8192 x 8192)

// Reads a PNG (libpng) or JPEG (libjpeg-turbo) as 8-bit RGB; the format is told by the file's
// magic bytes, never its name, and every other format is refused ("not a PNG or JPEG file
// (looks like ...)"). The path must be a regular file (a FIFO or directory is refused, never
// waited on). Conversions: grey -> RGB (R = G = B); palette -> RGB; 16-bit -> 8-bit (rounded);
// an alpha channel (or a PNG tRNS entry) is composited on a white background, so transparent
// pixels read as white whatever RGB they hide; CMYK JPEGs (Adobe's inverted form) are converted
// naively to RGB without colour management. A truncated or corrupt file is an error, never a
// partly filled image. Errors are one line naming the path.
int vqgpt_image_load(image_rgb *img, const char *path);
void vqgpt_image_free(image_rgb *img);
// Writes PNG atomically (temporary file + rename); no partial file on failure.
int vqgpt_image_save_png(const image_rgb *img, const char *path);

// x (3, H, W) from the whole image.
void vqgpt_image_to_tensor(const image_rgb *img, float *x);
// img (already sized w x h) from x (3, h, w).
void vqgpt_image_from_tensor(image_rgb *img, const float *x);
// x (3, size_h, size_w) from the window at (x0, y0), optionally mirrored left-right.
void vqgpt_image_crop_to_tensor(const image_rgb *img, int x0, int y0, int size_w, int size_h,
                                int flip, float *x);
// A new image resampled to w x h (stb_image_resize, its default filters).
int vqgpt_image_resize(image_rgb *out, const image_rgb *in, int w, int h);
// Tiles n images (3, h, w) into a grid of `cols` columns with a 2-pixel white border.
int vqgpt_image_grid(image_rgb *out, const float *xs, int n, int h, int w, int cols);

#endif
