#include "core/linear_half.h"

#include <string.h>

#include "core/blas.h"
#include "core/linear.h"
#include "core/parallel.h"
#include "core/simd.h"

// Portable conversions (exact: every half value is a float32 value).
static float f16_to_f32_bits(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);  // inf, NaN
  } else if (exp) {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  } else if (!man) {
    bits = sign;  // +-0
  } else {        // subnormal: normalise
    int e = -1;
    do {
      man <<= 1;
      e++;
    } while (!(man & 0x400));
    bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

static float bf16_to_f32_bits(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

float vqgpt_half_to_f32(uint16_t h, half_format f) {
  return f == HALF_BF16 ? bf16_to_f32_bits(h) : f16_to_f32_bits(h);
}

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
// Eight weights as float32: F16C for binary16; bfloat16 is the top half of a float32.
static inline __attribute__((always_inline)) __m256 load8(const uint16_t *w, half_format f) {
  __m128i h = _mm_loadu_si128((const __m128i *)w);
  if (f == HALF_F16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

void vqgpt_half_to_f32_array(float *dst, const uint16_t *src, size_t n, half_format f) {
  size_t i = 0;
  if (f == HALF_F16)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8(src + i, HALF_F16));
  else
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8(src + i, HALF_BF16));
  for (; i < n; i++) dst[i] = vqgpt_half_to_f32(src[i], f);
}

// linear.c's dot_block with the weight row in half precision: the same accumulators in the
// same order, so the sums equal vqgpt_linear_forward's on the converted weights bit for bit.
static inline __attribute__((always_inline)) void dot_block_half(const uint16_t *w, half_format f,
                                                                 const float *x, size_t ldx, int NI,
                                                                 int C, float out[8]) {
  __m256 acc[8], acc2 = _mm256_setzero_ps();
  for (int i = 0; i < NI; i++) acc[i] = _mm256_setzero_ps();
  int c = 0;
  if (NI == 1)
    for (; c + 16 <= C; c += 16) {
      acc[0] = _mm256_fmadd_ps(load8(w + c, f), _mm256_loadu_ps(x + c), acc[0]);
      acc2 = _mm256_fmadd_ps(load8(w + c + 8, f), _mm256_loadu_ps(x + c + 8), acc2);
    }
  for (; c + 8 <= C; c += 8) {
    __m256 wv = load8(w + c, f);
    for (int i = 0; i < NI; i++)
      acc[i] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + i * ldx + c), acc[i]);
  }
  for (int i = 0; i < NI; i++) {
    float s = hsum256(NI == 1 ? _mm256_add_ps(acc[0], acc2) : acc[i]);
    for (int k = c; k < C; k++) s += vqgpt_half_to_f32(w[k], f) * x[i * ldx + k];
    out[i] = s;
  }
}

// Each thread streams its weight rows once, each row dotted with the inputs eight, four, then
// one at a time (as linear.c's linear_rows).
static inline __attribute__((always_inline)) void rows_half(float *out, const float *in,
                                                            const uint16_t *weight, half_format f,
                                                            const float *bias, int N, int C,
                                                            int OC) {
#pragma omp parallel for schedule(static) if ((size_t)N * C * OC >= 8 * VQGPT_PAR_MIN)
  for (int o = 0; o < OC; o++) {
    const uint16_t *w = weight + (size_t)o * C;  // (C)
    float b = bias ? bias[o] : 0.0f, s[8];
    int n = 0;
    for (; n + 8 <= N; n += 8) {
      dot_block_half(w, f, in + (size_t)n * C, C, 8, C, s);
      for (int i = 0; i < 8; i++) out[(size_t)(n + i) * OC + o] = s[i] + b;
    }
    for (; n + 4 <= N; n += 4) {
      dot_block_half(w, f, in + (size_t)n * C, C, 4, C, s);
      for (int i = 0; i < 4; i++) out[(size_t)(n + i) * OC + o] = s[i] + b;
    }
    for (; n < N; n++) {
      dot_block_half(w, f, in + (size_t)n * C, C, 1, C, s);
      out[(size_t)n * OC + o] = s[0] + b;
    }
  }
}

// One copy of the kernel per format, so the conversion is chosen at compile time.
static void rows_f16(float *out, const float *in, const uint16_t *w, const float *bias, int N,
                     int C, int OC) {
  rows_half(out, in, w, HALF_F16, bias, N, C, OC);
}
static void rows_bf16(float *out, const float *in, const uint16_t *w, const float *bias, int N,
                      int C, int OC) {
  rows_half(out, in, w, HALF_BF16, bias, N, C, OC);
}

static void linear_rows_half(float *out, const float *in, const uint16_t *weight, half_format f,
                             const float *bias, int N, int C, int OC) {
  if (f == HALF_F16)
    rows_f16(out, in, weight, bias, N, C, OC);
  else
    rows_bf16(out, in, weight, bias, N, C, OC);
}
#else
void vqgpt_half_to_f32_array(float *dst, const uint16_t *src, size_t n, half_format f) {
  for (size_t i = 0; i < n; i++) dst[i] = vqgpt_half_to_f32(src[i], f);
}

// Portable fallback: one dot product per (input, row), in linear_dot_inline's order.
static void linear_rows_half(float *out, const float *in, const uint16_t *weight, half_format f,
                             const float *bias, int N, int C, int OC) {
#pragma omp parallel for schedule(static) if ((size_t)N * C * OC >= 8 * VQGPT_PAR_MIN)
  for (int o = 0; o < OC; o++) {
    const uint16_t *w = weight + (size_t)o * C;
    for (int n = 0; n < N; n++) {
      const float *x = in + (size_t)n * C;
      float acc[16] = {0}, s = 0;
      int i = 0;
      for (; i + 16 <= C; i += 16)
        for (int u = 0; u < 16; u++) acc[u] += vqgpt_half_to_f32(w[i + u], f) * x[i + u];
      for (int u = 0; u < 16; u++) s += acc[u];
      for (; i < C; i++) s += vqgpt_half_to_f32(w[i], f) * x[i];
      out[(size_t)n * OC + o] = s + (bias ? bias[o] : 0.0f);
    }
  }
}
#endif

size_t vqgpt_linear_half_scratch_floats(int C, int OC) {
  return (size_t)(OC < LINEAR_HALF_TILE_ROWS ? OC : LINEAR_HALF_TILE_ROWS) * C;
}

void vqgpt_linear_forward_half(float *out, const float *in, const uint16_t *weight, half_format f,
                               const float *bias, int N, int C, int OC, float *scratch) {
  if (N <= LINEAR_GEMV_MAX_ROWS) {
    linear_rows_half(out, in, weight, f, bias, N, C, OC);
    return;
  }
  // Converting a tile costs C operations per weight, its product 2N: small beside sgemm for
  // the N this path sees, and the tile stays in the caches between the two.
  for (int o0 = 0; o0 < OC; o0 += LINEAR_HALF_TILE_ROWS) {
    int rows = OC - o0 < LINEAR_HALF_TILE_ROWS ? OC - o0 : LINEAR_HALF_TILE_ROWS;
    size_t n = (size_t)rows * C;
    const uint16_t *w = weight + (size_t)o0 * C;
#pragma omp parallel for schedule(static) if (n >= VQGPT_PAR_MIN)
    for (size_t i = 0; i < n; i += 4096)
      vqgpt_half_to_f32_array(scratch + i, w + i, n - i < 4096 ? n - i : 4096, f);
    vqgpt_sgemm(false, true, N, rows, C, 1.0f, in, C, scratch, C, 0.0f, out + o0, OC);
  }
  if (!bias) return;
#pragma omp parallel for schedule(static) if ((size_t)N * OC >= VQGPT_PAR_MIN)
  for (int n = 0; n < N; n++) {
    float *o = out + (size_t)n * OC;  // (OC)
    for (int j = 0; j < OC; j++) o[j] += bias[j];
  }
}
