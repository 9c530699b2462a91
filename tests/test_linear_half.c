// core/linear_half.c: half -> float32 conversions (every one of the 65536 values of both
// formats), and Linear products with F16/BF16 weights against vqgpt_linear_forward on the same
// weights converted to float32: bit-identical for the streaming kernel (small N), 1e-5 for the
// tiled sgemm path, odd sizes (C not a multiple of 8 or 16, OC past one tile).
#include <string.h>

#include "core/linear.h"
#include "core/linear_half.h"
#include "core/rng.h"
#include "test_util.h"
#include "weights/safetensors.h"

static uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static uint16_t to_bf16(float f) {  // round to nearest even (no NaNs here)
  uint32_t u = bits_of(f);
  return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

static void test_conversions(void) {
  CHECK(vqgpt_half_to_f32(0x3c00, HALF_F16) == 1.0f);
  CHECK(vqgpt_half_to_f32(0xc000, HALF_F16) == -2.0f);
  CHECK(vqgpt_half_to_f32(0x7bff, HALF_F16) == 65504.0f);
  CHECK(vqgpt_half_to_f32(0x0001, HALF_F16) == ldexpf(1.0f, -24));  // smallest subnormal
  CHECK(vqgpt_half_to_f32(0x03ff, HALF_F16) == ldexpf(1023.0f, -24));
  CHECK(bits_of(vqgpt_half_to_f32(0x8000, HALF_F16)) == 0x80000000u);
  CHECK(isinf(vqgpt_half_to_f32(0x7c00, HALF_F16)) && isnan(vqgpt_half_to_f32(0x7e00, HALF_F16)));
  CHECK(vqgpt_half_to_f32(0x3f80, HALF_BF16) == 1.0f);
  CHECK(vqgpt_half_to_f32(0xc0a0, HALF_BF16) == -5.0f);
  static uint16_t all[65536];
  static float vec[65536];
  for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
  for (int fmt = 0; fmt < 2; fmt++) {
    half_format f = fmt ? HALF_BF16 : HALF_F16;
    vqgpt_half_to_f32_array(vec, all, 65536, f);
    int mismatches = 0, roundtrip = 0;
    for (int i = 0; i < 65536; i++) {
      float s = vqgpt_half_to_f32(all[i], f);
      // NaNs only need to stay NaNs (F16C quiets signalling ones).
      if (isnan(s) ? !isnan(vec[i]) : bits_of(s) != bits_of(vec[i])) mismatches++;
      if (!isnan(s) && (f == HALF_F16 ? vqgpt_st_f32_to_f16(s) : to_bf16(s)) != all[i]) roundtrip++;
    }
    CHECKF(mismatches == 0, "format %d: %d vector conversions differ from the scalar one", fmt,
           mismatches);
    CHECKF(roundtrip == 0, "format %d: %d values do not round-trip", fmt, roundtrip);
  }
}

static void test_products(half_format f) {
  static const int Cs[] = {1, 7, 13, 24, 37, 100};
  static const int OCs[] = {1, 5, 33, 600};
  static const int Ns[] = {1, 3, 5, 8, 13, 16, 17, 40};
  uint64_t rng = 11;
  for (size_t ci = 0; ci < sizeof Cs / sizeof *Cs; ci++)
    for (size_t oi = 0; oi < sizeof OCs / sizeof *OCs; oi++) {
      int C = Cs[ci], OC = OCs[oi];
      uint16_t *wh = malloc(sizeof(uint16_t) * OC * C);
      float *w = alloc_f((size_t)OC * C), *bias = alloc_f(OC);
      float *scratch = alloc_f(vqgpt_linear_half_scratch_floats(C, OC));
      fill_uniform(w, (size_t)OC * C, &rng, 0.5f);
      fill_uniform(bias, OC, &rng, 0.5f);
      // The reference multiplies the rounded weights in float32.
      for (size_t i = 0; i < (size_t)OC * C; i++) {
        wh[i] = f == HALF_F16 ? vqgpt_st_f32_to_f16(w[i]) : to_bf16(w[i]);
        w[i] = vqgpt_half_to_f32(wh[i], f);
      }
      for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++) {
        int N = Ns[ni];
        float *in = alloc_f((size_t)N * C), *out = alloc_f((size_t)N * OC),
              *ref = alloc_f((size_t)N * OC);
        fill_uniform(in, (size_t)N * C, &rng, 1.0f);
        const float *b = ni % 2 ? bias : NULL;
        vqgpt_linear_forward(ref, in, w, b, N, C, OC);
        vqgpt_linear_forward_half(out, in, wh, f, b, N, C, OC,
                                  N > LINEAR_GEMV_MAX_ROWS ? scratch : NULL);
        if (N <= LINEAR_GEMV_MAX_ROWS)
          CHECKF(!memcmp(out, ref, sizeof(float) * N * OC),
                 "format %d N %d C %d OC %d: streaming kernel not bit-identical", f, N, C, OC);
        double e = rel_err(out, ref, (size_t)N * OC);
        CHECKF(e < 1e-5, "format %d N %d C %d OC %d: relative error %g", f, N, C, OC, e);
        free(in), free(out), free(ref);
      }
      free(wh), free(w), free(bias), free(scratch);
    }
}

int main(void) {
  test_conversions();
  test_products(HALF_F16);
  test_products(HALF_BF16);
  return test_finish("test_linear_half");
}
