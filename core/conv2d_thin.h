// Stride-1 convolutions with at most 4 output channels (the VQGAN's conv_out to RGB, the
// PatchGAN's logit layer). Any sgemm lowering of them has a dimension of 1 to 4, where
// OpenBLAS runs at ~20 GFLOP/s; these direct loops keep the few output rows in registers.
// Internal to conv2d.c, which dispatches here.
#ifndef VQGPT_CONV2D_THIN_H
#define VQGPT_CONV2D_THIN_H

#include <stdbool.h>
#include <stddef.h>

#include "core/conv2d.h"

#define CONV_THIN_MAX_OUT 4

bool vqgpt_conv2d_thin_applies(const conv2d_shape *s);
size_t vqgpt_conv2d_thin_scratch_size(const conv2d_shape *s, int h, int w);
void vqgpt_conv2d_thin_forward(float *out, const float *in, const float *weight, const float *bias,
                               const conv2d_shape *s, int B, int H, int W, float *scratch);
// din (=) and dweight (+=) as vqgpt_conv2d_backward; the bias gradient is left to the caller.
void vqgpt_conv2d_thin_backward(float *din, float *dweight, const float *dout, const float *in,
                                const float *weight, const conv2d_shape *s, int B, int H, int W,
                                float *scratch);

#endif
