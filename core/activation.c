// With trapping math on (the default), GCC will not turn `x > 0 ? a : b` followed by
// arithmetic into a vector blend, and these loops stay scalar. We never read FP exception
// flags; results are unchanged (this is not -ffast-math: no reassociation, NaN/inf kept).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "core/activation.h"

#include "core/mathf.h"

// Below this many elements the OpenMP fork costs more than the loop.
#define ACT_PAR_MIN 32768

// `omp simd` also tells the compiler that out == in is fine (each element is read before it
// is written), so in-place calls keep the vector loop.

void vqgpt_swish_forward(float *out, const float *in, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= ACT_PAR_MIN)
  for (size_t i = 0; i < n; i++) {
    float x = in[i];
    out[i] = x / (1.0f + vqgpt_expf(-x));
  }
}

void vqgpt_swish_backward(float *din, const float *dout, const float *in, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= ACT_PAR_MIN)
  for (size_t i = 0; i < n; i++) {
    float x = in[i];
    float s = 1.0f / (1.0f + vqgpt_expf(-x));
    din[i] = dout[i] * s * (1.0f + x * (1.0f - s));
  }
}

void vqgpt_leaky_relu_forward(float *out, const float *in, size_t n, float slope) {
#pragma omp parallel for simd schedule(static) if (n >= ACT_PAR_MIN)
  for (size_t i = 0; i < n; i++) {
    float x = in[i];
    out[i] = x > 0.0f ? x : x * slope;
  }
}

void vqgpt_leaky_relu_backward(float *din, const float *dout, const float *in, size_t n,
                               float slope) {
#pragma omp parallel for simd schedule(static) if (n >= ACT_PAR_MIN)
  for (size_t i = 0; i < n; i++) din[i] = in[i] > 0.0f ? dout[i] : dout[i] * slope;
}

void vqgpt_relu_forward(float *out, const float *in, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= ACT_PAR_MIN)
  for (size_t i = 0; i < n; i++) {
    float x = in[i];
    out[i] = x < 0.0f ? 0.0f : x;  // NaN propagates, as in PyTorch
  }
}

void vqgpt_relu_backward(float *din, const float *dout, const float *in, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= ACT_PAR_MIN)
  for (size_t i = 0; i < n; i++) din[i] = in[i] <= 0.0f ? 0.0f : dout[i];
}
