// 2-D convolution, NCHW, any kernel size, stride and (asymmetric) zero padding.
// Lowered to sgemm; the caller passes scratch of vqgpt_conv2d_scratch_size() floats.
#ifndef VQGPT_CONV2D_H
#define VQGPT_CONV2D_H

#include <stddef.h>

typedef struct {
  int c_in, c_out;
  int k_h, k_w;
  int stride;
  int pad_top, pad_bottom, pad_left, pad_right;
} conv2d_shape;

// "same" padding for odd k at stride 1 (k/2 on every side).
conv2d_shape vqgpt_conv2d_same(int c_in, int c_out, int k);
int vqgpt_conv2d_out_h(const conv2d_shape *s, int h);
int vqgpt_conv2d_out_w(const conv2d_shape *s, int w);

// Floats of scratch that one forward or backward call needs for an H x W input
// (independent of the batch size). Bounded: large images are processed in tiles.
size_t vqgpt_conv2d_scratch_size(const conv2d_shape *s, int h, int w);

// out (B, c_out, Ho, Wo) = conv(in (B, c_in, H, W), weight (c_out, c_in, k_h, k_w)) + bias
// (c_out; may be NULL). out must not alias in.
void vqgpt_conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                          const conv2d_shape *s, int B, int H, int W, float *scratch);

// din (B, c_in, H, W) is overwritten (=) when non-NULL; dweight and dbias (may be NULL)
// accumulate (+=).
void vqgpt_conv2d_backward(float *din, float *dweight, float *dbias, const float *dout,
                           const float *in, const float *weight, const conv2d_shape *s, int B,
                           int H, int W, float *scratch);

#endif
