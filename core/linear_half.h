// Linear layers whose weights stay in half precision (IEEE binary16 or bfloat16 bits), for
// the sampling forward of a model stored that way: half the bytes per weight where batch-1
// decoding is bound by memory bandwidth. Weights are converted to float32 inside the product
// and every sum is accumulated in float32, in the same order as vqgpt_linear_forward on the
// converted weights.
#ifndef VQGPT_LINEAR_HALF_H
#define VQGPT_LINEAR_HALF_H

#include <stddef.h>
#include <stdint.h>

typedef enum { HALF_F16, HALF_BF16 } half_format;

// Rows of the weight matrix converted to float32 at a time when N is large (see below).
#define LINEAR_HALF_TILE_ROWS 512

float vqgpt_half_to_f32(uint16_t h, half_format f);
void vqgpt_half_to_f32_array(float *dst, const uint16_t *src, size_t n, half_format f);

// out (N, OC) = in (N, C) . weight^T + bias, weight (OC, C) in format f, bias (OC) or NULL.
// Up to LINEAR_GEMV_MAX_ROWS inputs (incremental decoding) each thread streams its weight rows
// once, converting in registers. More inputs (a prefill) convert LINEAR_HALF_TILE_ROWS weight
// rows at a time into `scratch` (vqgpt_linear_half_scratch_floats(C, OC) floats; unused, may be
// NULL, for small N) and multiply them with sgemm.
void vqgpt_linear_forward_half(float *out, const float *in, const uint16_t *weight, half_format f,
                               const float *bias, int N, int C, int OC, float *scratch);
size_t vqgpt_linear_half_scratch_floats(int C, int OC);

#endif
