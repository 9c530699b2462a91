// Group normalization over (C/G channels x HW) per sample, with per-channel affine.
#ifndef VQGPT_GROUPNORM_H
#define VQGPT_GROUPNORM_H

// out, in: (B, C, HW); gamma, beta: (C); mean, rstd: (B, G) saved for backward.
// out may alias in.
void groupnorm_forward(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                       const float *beta, int B, int C, int HW, int G, float eps);

// din (B, C, HW) is overwritten (=); dgamma, dbeta accumulate (+=).
void groupnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                        const float *in, const float *mean, const float *rstd, const float *gamma,
                        int B, int C, int HW, int G);

#endif
