// GELU in the exact erf form of nn.GELU(): gelu(x) = 0.5 x (1 + erf(x / sqrt(2))).
// Forward may run in place (out == in); backward may run in place (din == dout).
#ifndef VQGPT_GELU_H
#define VQGPT_GELU_H

#include <stddef.h>

// The erf both use: a rational fit, within 3.4e-7 of erf everywhere (tests/test_gpt_kernels.c).
float vqgpt_gelu_erf(float x);

void vqgpt_gelu_forward(float *out, const float *in, size_t n);
// din (n) is overwritten (=).
void vqgpt_gelu_backward(float *din, const float *dout, const float *in, size_t n);

#endif
