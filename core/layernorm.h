// Layer normalization over the last dimension (nn.LayerNorm(C), biased variance).
#ifndef VQGPT_LAYERNORM_H
#define VQGPT_LAYERNORM_H

// out, in: (N, C); weight, bias: (C); mean, rstd: (N) saved for backward (may be NULL when no
// backward follows). out must not alias in.
void vqgpt_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                             const float *weight, const float *bias, int N, int C, float eps);

// din (N, C) accumulates (+=): layer norms read the residual stream, whose gradient is a sum.
// dweight, dbias (C) accumulate (+=).
void vqgpt_layernorm_backward(float *din, float *dweight, float *dbias, const float *dout,
                              const float *in, const float *mean, const float *rstd,
                              const float *weight, int N, int C);

#endif
