// Training passes of the VQGAN. The network is laid out once per batch shape as a tape of
// ops, each with its own saved activations; forward runs the tape, backward runs it in reverse.
#ifndef VQGPT_VQGAN_TAPE_H
#define VQGPT_VQGAN_TAPE_H

#include "stage1_vqgan/vqgan_layers.h"

typedef struct vqgan_tape vqgan_tape;

// Plans and allocates the passes for a (B, in_channels, H, W) input.
vqgan_tape *vqgpt_vqgan_tape_new(const vqgan *m, int B, int H, int W);
void vqgpt_vqgan_tape_free(vqgan_tape *t);
// Bytes of saved activations and scratch the tape holds.
size_t vqgpt_vqgan_tape_bytes(const vqgan_tape *t);

// x (B, in_channels, H, W) -> z (the quant_conv output), indices, zq, and xrec; returns the
// legacy codebook+commitment loss in *qloss. The returned pointers stay valid until the next
// call. xrec is (B, out_ch, H, W); z and zq are (B, embed_dim, H/f, W/f).
int vqgpt_vqgan_tape_forward(vqgan_tape *t, const float *x, double *qloss);
const float *vqgpt_vqgan_tape_xrec(const vqgan_tape *t);
const float *vqgpt_vqgan_tape_z(const vqgan_tape *t);
const float *vqgpt_vqgan_tape_zq(const vqgan_tape *t);
const int32_t *vqgpt_vqgan_tape_indices(const vqgan_tape *t);
// The input of the decoder's last conv (swish(norm_out(h))), (B, c, H, W): with it the
// gradient of any loss w.r.t. decoder.conv_out.weight is one conv2d weight-gradient.
const float *vqgpt_vqgan_tape_last_input(const vqgan_tape *t);

// Accumulates (+=) into grad (the model's parameter layout) the gradient of
//   L = sum(dxrec * xrec) + qloss_weight * qloss
// with the straight-through estimator, as the reference's VQModel backward. legacy: the
// reference's default loss mean((sg[zq]-z)^2) + beta * mean((zq-sg[z])^2); otherwise the
// corrected beta * mean((sg[zq]-z)^2) + mean((zq-sg[z])^2) (same value, other gradients).
int vqgpt_vqgan_tape_backward(vqgan_tape *t, const float *dxrec, float qloss_weight, bool legacy,
                              float *grad);

#endif
