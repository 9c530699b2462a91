// Nearest-neighbour 2x upsampling (F.interpolate(scale_factor=2.0, mode="nearest")).
#ifndef VQGPT_UPSAMPLE_H
#define VQGPT_UPSAMPLE_H

// out (B, C, 2H, 2W) from in (B, C, H, W).
void vqgpt_upsample2x_forward(float *out, const float *in, int B, int C, int H, int W);
// din (B, C, H, W) overwritten (=): each input gets the sum of its four output gradients.
void vqgpt_upsample2x_backward(float *din, const float *dout, int B, int C, int H, int W);

#endif
