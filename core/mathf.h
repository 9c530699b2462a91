// Branch-free float exp that the compiler can vectorize. libm's expf only vectorizes under
// -ffast-math, which the project does not use (IEEE semantics), and scalar expf would make
// swish and softmax dominate the cost of the element-wise layers.
#ifndef VQGPT_MATHF_H
#define VQGPT_MATHF_H

#include <stdint.h>
#include <string.h>

// exp(x) within 2 ulp, overflowing to inf, underflowing through denormals to 0; NaN stays NaN.
static inline float vqgpt_expf(float x) {
  // Clamp |x| to 104 (beyond, exp is inf or 0 anyway) on the bit pattern: integer selects
  // cannot trap, so the compiler emits blends, while float comparisons under the default
  // trapping math made it duplicate the constant branches and give up vectorizing. NaN
  // patterns (above 0x7F800000) pass unchanged.
  uint32_t ix;
  memcpy(&ix, &x, sizeof ix);
  uint32_t ax = ix & 0x7FFFFFFFu;
  const uint32_t lim = 0x42D00000u;  // 104.0f
  uint32_t cx = (ax > lim && ax <= 0x7F800000u) ? (ix & 0x80000000u) | lim : ix;
  float c;
  memcpy(&c, &cx, sizeof c);
  // n = round(c * log2(e)) by the 1.5*2^23 trick (vectorizes, unlike lrintf).
  const float shifter = 12582912.0f;
  float t = c * 1.44269504088896341f + shifter;
  float n = t - shifter;
  // r = c - n*ln2 in two steps; n * 0.693359375 is exact, so r keeps full precision.
  float r = c - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  // Cephes expf polynomial on [-ln2/2, ln2/2].
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // Scale by 2^n as 2^h1 * 2^h2, h1 + h2 = n, |h1|, |h2| <= 75: each factor is a normal float
  // over the whole clamped range, so inf and denormal results come out of the multiplies.
  // The low mantissa bits of t hold n; u = n + 256 stays positive. Unsigned arithmetic: a NaN
  // input gives garbage bits here but has already made p NaN.
  uint32_t ti;
  memcpy(&ti, &t, sizeof ti);
  uint32_t u = ti - 0x4B400000u + 256u;
  uint32_t h = u >> 1;
  uint32_t b1 = (h - 1u) << 23, b2 = (u - h - 1u) << 23;
  float s1, s2;
  memcpy(&s1, &b1, sizeof s1);
  memcpy(&s2, &b2, sizeof s2);
  return p * s1 * s2;
}

#endif
