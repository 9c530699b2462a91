// Spatial self-attention core of the reference AttnBlock (the 1x1 q/k/v/proj convolutions and
// the GroupNorm are done by the caller with conv2d/groupnorm):
//   probs[b,i,j] = softmax_j( sum_c q[b,c,i] k[b,c,j] * C^-0.5 ),  out[b,c,i] = sum_j v[b,c,j]
//   probs[b,i,j]
#ifndef VQGPT_ATTENTION2D_H
#define VQGPT_ATTENTION2D_H

#include <stddef.h>

// q, k, v, out: (B, C, N) with N = H*W; probs: (B, N, N) saved for backward.
void vqgpt_attn2d_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                          int B, int C, int N);

// The same without keeping the probabilities: query positions in blocks of ATTN2D_ROWS, so the
// memory is linear in N (scratch: vqgpt_attn2d_rows_scratch_size(N) floats) for inference at any
// resolution. Each row's scores, softmax and weighted sum are those of vqgpt_attn2d_forward.
#define ATTN2D_ROWS 256
size_t vqgpt_attn2d_rows_scratch_size(int N);
void vqgpt_attn2d_forward_rows(float *out, float *scratch, const float *q, const float *k,
                               const float *v, int B, int C, int N);

// dq, dk, dv (B, C, N) overwritten (=). scratch: vqgpt_attn2d_scratch_size(N) floats.
size_t vqgpt_attn2d_scratch_size(int N);
void vqgpt_attn2d_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                           const float *k, const float *v, const float *probs, int B, int C, int N,
                           float *scratch);

#endif
