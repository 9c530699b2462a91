// Group normalization over (C/G channels x HW) per sample, with per-channel affine.
#ifndef VQGPT_GROUPNORM_H
#define VQGPT_GROUPNORM_H

// out, in: (B, C, HW); gamma, beta: (C); mean, rstd: (B, G) saved for backward.
// out may alias in.
void vqgpt_groupnorm_forward(float *out, float *mean, float *rstd, const float *in,
                             const float *gamma, const float *beta, int B, int C, int HW, int G,
                             float eps);

// din (B, C, HW) is overwritten (=); dgamma, dbeta accumulate (+=).
void vqgpt_groupnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                              const float *in, const float *mean, const float *rstd,
                              const float *gamma, int B, int C, int HW, int G);

// GroupNorm followed by swish in one pass: normed = groupnorm(in), act = swish(normed), the
// same floats as vqgpt_groupnorm_forward then vqgpt_swish_forward. normed, act: (B, C, HW); normed
// may alias in, act may not alias either.
void vqgpt_groupnorm_swish_forward(float *normed, float *act, float *mean, float *rstd,
                                   const float *in, const float *gamma, const float *beta, int B,
                                   int C, int HW, int G, float eps);

// The backward of act = swish(groupnorm(in)) from the saved normed output: the same as
// vqgpt_swish_backward into a temporary and then vqgpt_groupnorm_backward, without the temporary
// pass. din (B, C, HW) is overwritten (=) and may alias dout; dgamma, dbeta accumulate (+=).
void vqgpt_groupnorm_swish_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                                    const float *normed, const float *in, const float *mean,
                                    const float *rstd, const float *gamma, int B, int C, int HW,
                                    int G);

#endif
