// 3x3 stride-1 "same" convolutions by Winograd's minimal filtering F(4x4, 3x3) (Lavin and
// Gray, 2015): each 4x4 output tile costs 36 multiply-adds per channel pair instead of 144,
// in 36 independent matrix products. The transforms add rounding of the order of a few
// float ulps per term (the test bounds it against double-precision convolution).
//
// Work is split into (image, block of tile rows) items run in parallel, each with its own
// single-threaded sgemm calls, so both cores stay busy without synchronising inside sgemm.
#ifndef VQGPT_WINOGRAD_H
#define VQGPT_WINOGRAD_H

#include <stdbool.h>
#include <stddef.h>

// Whether the Winograd path applies and pays off: a 3x3 kernel, stride 1, padding 1 on every
// side, and enough channels and tiles for the transforms to be worth their memory traffic.
bool vqgpt_winograd_applies(int c_in, int c_out, int k_h, int k_w, int stride, int pad_t, int pad_b,
                            int pad_l, int pad_r, int h, int w);

// Floats of scratch one forward or backward call needs (any batch size).
size_t vqgpt_winograd_scratch_size(int c_in, int c_out, int h, int w);

// out (B, c_out, H, W) = conv3x3(in (B, c_in, H, W), weight (c_out, c_in, 3, 3)) + bias
// (may be NULL).
void vqgpt_winograd_forward(float *out, const float *in, const float *weight, const float *bias,
                            int c_in, int c_out, int B, int H, int W, float *scratch);

// din (B, c_in, H, W) = the input gradient of vqgpt_winograd_forward for dout (B, c_out, H, W).
void vqgpt_winograd_backward_data(float *din, const float *dout, const float *weight, int c_in,
                                  int c_out, int B, int H, int W, float *scratch);

// dweight (c_out, c_in, 3, 3) += the weight gradient for dout and the forward's input.
void vqgpt_winograd_backward_weight(float *dweight, const float *dout, const float *in, int c_in,
                                    int c_out, int B, int H, int W, float *scratch);

#endif
