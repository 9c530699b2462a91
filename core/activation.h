// Element-wise activations. Forward may run in place (out == in); backward may run in place
// (din == dout). Input gradients are overwritten (=).
#ifndef VQGPT_ACTIVATION_H
#define VQGPT_ACTIVATION_H

#include <stddef.h>

// swish(x) = x * sigmoid(x) (the reference's "nonlinearity").
void vqgpt_swish_forward(float *out, const float *in, size_t n);
void vqgpt_swish_backward(float *din, const float *dout, const float *in, size_t n);

void vqgpt_leaky_relu_forward(float *out, const float *in, size_t n, float slope);
void vqgpt_leaky_relu_backward(float *din, const float *dout, const float *in, size_t n,
                               float slope);

void vqgpt_relu_forward(float *out, const float *in, size_t n);
void vqgpt_relu_backward(float *din, const float *dout, const float *in, size_t n);

#endif
