// MaxPool2d(kernel_size=2, stride=2), no padding, floor mode (VGG16's pooling).
#ifndef VQGPT_POOL_H
#define VQGPT_POOL_H

#include <stdint.h>

// out (B, C, H/2, W/2) from in (B, C, H, W); an odd last row/column is dropped, as PyTorch.
// argmax (B, C, H/2, W/2), saved for backward: the winner's position in its window
// (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right). Ties go to the first in that order
// and a NaN wins (the last one if several), as in PyTorch.
void vqgpt_maxpool2x2_forward(float *out, uint8_t *argmax, const float *in, int B, int C, int H,
                              int W);

// din (B, C, H, W) is overwritten (=): each window's winner gets its output gradient, every
// other input (including a dropped odd row/column) gets 0.
void vqgpt_maxpool2x2_backward(float *din, const float *dout, const uint8_t *argmax, int B, int C,
                               int H, int W);

#endif
