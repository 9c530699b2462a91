#include "core/groupnorm.h"

#include <math.h>
#include <stddef.h>

#include "core/mathf.h"

// Sums run in float vector lanes over blocks of GN_BLOCK elements and in double across
// blocks: one float accumulator per lane would lose digits over a 10^6-element group
// (GroupNorm at 256x256 with 4 channels), while double lanes halve the vector width.
#define GN_BLOCK 128

// s1 = sum(x - pivot), s2 = sum((x - pivot)^2). The pivot (a sample of the data) keeps the
// one-pass variance free of cancellation when |mean| >> std.
static void gn_moments(const float *x, size_t n, float pivot, double *s1, double *s2) {
  double t1 = 0, t2 = 0;
  for (size_t i0 = 0; i0 < n; i0 += GN_BLOCK) {
    size_t i1 = n - i0 < GN_BLOCK ? n : i0 + GN_BLOCK;
    float a = 0, q = 0;
#pragma omp simd reduction(+ : a, q)
    for (size_t i = i0; i < i1; i++) {
      float d = x[i] - pivot;
      a += d;
      q += d * d;
    }
    t1 += a;
    t2 += q;
  }
  *s1 = t1;
  *s2 = t2;
}

// s1 = sum(dy), s2 = sum(dy * (x - mu)): summing the centred product avoids the cancellation
// of sum(dy x) - mu sum(dy) when |mu| >> std.
static void gn_dot(const float *dy, const float *x, float mu, size_t n, double *s1, double *s2) {
  double t1 = 0, t2 = 0;
  for (size_t i0 = 0; i0 < n; i0 += GN_BLOCK) {
    size_t i1 = n - i0 < GN_BLOCK ? n : i0 + GN_BLOCK;
    float a = 0, q = 0;
#pragma omp simd reduction(+ : a, q)
    for (size_t i = i0; i < i1; i++) {
      a += dy[i];
      q += dy[i] * (x[i] - mu);
    }
    t1 += a;
    t2 += q;
  }
  *s1 = t1;
  *s2 = t2;
}

// Mean and 1/sqrt(biased variance + eps) of one group's gsize values, in double.
static void gn_group_stats(const float *x, size_t gsize, float eps, double *mu, double *r) {
  double s1, s2;
  gn_moments(x, gsize, x[0], &s1, &s2);
  double m1 = s1 / gsize;
  double var = s2 / gsize - m1 * m1;  // biased, as PyTorch
  if (var < 0) var = 0;
  *mu = x[0] + m1;
  *r = 1.0 / sqrt(var + eps);
}

// vqgpt_groupnorm_forward when act is NULL; otherwise also act = swish(out), each channel activated
// while its values are in registers instead of in a second pass over memory.
static void gn_forward(float *out, float *act, float *mean, float *rstd, const float *in,
                       const float *gamma, const float *beta, int B, int C, int HW, int G,
                       float eps) {
  int cpg = C / G;
  size_t hw = (size_t)HW, gsize = (size_t)cpg * hw;
#pragma omp parallel for schedule(dynamic, 1) if ((size_t)B * C * hw >= 32768)
  for (int bg = 0; bg < B * G; bg++) {
    int b = bg / G, g = bg % G;
    size_t off = ((size_t)b * C + (size_t)g * cpg) * hw;
    const float *x = in + off;  // (cpg, HW)
    double mu, r;
    gn_group_stats(x, gsize, eps, &mu, &r);
    mean[bg] = (float)mu;
    rstd[bg] = (float)r;
    for (int cc = 0; cc < cpg; cc++) {
      int c = g * cpg + cc;
      float a = (float)(r * gamma[c]);
      float sh = (float)(beta[c] - mu * r * gamma[c]);
      size_t co = off + (size_t)cc * hw;
      const float *xc = in + co;
      float *yc = out + co;
      if (!act) {
        for (size_t i = 0; i < hw; i++) yc[i] = xc[i] * a + sh;
        continue;
      }
      float *sc = act + co;
#pragma omp simd
      for (size_t i = 0; i < hw; i++) {
        float v = xc[i] * a + sh;
        yc[i] = v;
        sc[i] = v / (1.0f + vqgpt_expf(-v));
      }
    }
  }
}

// dy = dout * swish'(normed) into dy, with the sums of gn_dot taken while in registers.
static void gn_swish_dot(float *dy, const float *dout, const float *normed, const float *x,
                         float mu, size_t n, double *s1, double *s2) {
  double t1 = 0, t2 = 0;
  for (size_t i0 = 0; i0 < n; i0 += GN_BLOCK) {
    size_t i1 = n - i0 < GN_BLOCK ? n : i0 + GN_BLOCK;
    float a = 0, q = 0;
#pragma omp simd reduction(+ : a, q)
    for (size_t i = i0; i < i1; i++) {
      float v = normed[i];
      float sg = 1.0f / (1.0f + vqgpt_expf(-v));
      float d = dout[i] * sg * (1.0f + v * (1.0f - sg));
      dy[i] = d;
      a += d;
      q += d * (x[i] - mu);
    }
    t1 += a;
    t2 += q;
  }
  *s1 = t1;
  *s2 = t2;
}

// vqgpt_groupnorm_backward when normed is NULL; otherwise the backward of swish(groupnorm(in)),
// with dy = dout * swish'(normed) formed channel by channel in din: the channel is still in cache
// for the sums and the final pass, and no (B, C, HW) temporary makes a round trip through
// memory.
static void gn_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                        const float *normed, const float *in, const float *mean, const float *rstd,
                        const float *gamma, int B, int C, int HW, int G) {
  int cpg = C / G;
  size_t hw = (size_t)HW;
  double n = (double)cpg * hw;
  // Each thread owns whole groups, hence whole channels of dgamma/dbeta: no races.
#pragma omp parallel for schedule(dynamic, 1) if ((size_t)B * C * hw >= 32768)
  for (int g = 0; g < G; g++) {
    for (int b = 0; b < B; b++) {
      size_t off = ((size_t)b * C + (size_t)g * cpg) * hw;
      const float *x = in + off;  // (cpg, HW)
      float *dx = din + off;      // (cpg, HW)
      // The gradient at the norm's output: dout, or dout * swish'(normed) formed in dx.
      const float *dy = normed ? dx : dout + off;
      double mu = mean[b * G + g], r = rstd[b * G + g];
      // With xhat = (x - mu) r and dyh = dy gamma:
      // dx = r (dyh - mean(dyh) - xhat mean(dyh xhat)), linear in (dy, x) per channel.
      double sum_dyh = 0, sum_dyh_xhat = 0;
      for (int cc = 0; cc < cpg; cc++) {
        int c = g * cpg + cc;
        size_t co = (size_t)cc * hw;
        double sdy, sdyxc;
        if (normed)
          gn_swish_dot(dx + co, dout + off + co, normed + off + co, x + co, (float)mu, hw, &sdy,
                       &sdyxc);
        else
          gn_dot(dy + co, x + co, (float)mu, hw, &sdy, &sdyxc);
        double dot_xhat = r * sdyxc;  // sum(dy * xhat) over this channel
        dgamma[c] += (float)dot_xhat;
        dbeta[c] += (float)sdy;
        sum_dyh += gamma[c] * sdy;
        sum_dyh_xhat += gamma[c] * dot_xhat;
      }
      double k = -r * r * sum_dyh_xhat / n;   // coefficient of x
      double k0 = -r * sum_dyh / n - k * mu;  // constant term
      for (int cc = 0; cc < cpg; cc++) {
        int c = g * cpg + cc;
        float a = (float)(r * gamma[c]), kx = (float)k, kc = (float)k0;
        size_t co = (size_t)cc * hw;
        const float *xc = x + co, *dyc = dy + co;
        float *dxc = dx + co;
        for (size_t i = 0; i < hw; i++) dxc[i] = a * dyc[i] + kx * xc[i] + kc;
      }
    }
  }
}

void vqgpt_groupnorm_forward(float *out, float *mean, float *rstd, const float *in,
                             const float *gamma, const float *beta, int B, int C, int HW, int G,
                             float eps) {
  gn_forward(out, NULL, mean, rstd, in, gamma, beta, B, C, HW, G, eps);
}

void vqgpt_groupnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                              const float *in, const float *mean, const float *rstd,
                              const float *gamma, int B, int C, int HW, int G) {
  gn_backward(din, dgamma, dbeta, dout, NULL, in, mean, rstd, gamma, B, C, HW, G);
}

void vqgpt_groupnorm_swish_forward(float *normed, float *act, float *mean, float *rstd,
                                   const float *in, const float *gamma, const float *beta, int B,
                                   int C, int HW, int G, float eps) {
  gn_forward(normed, act, mean, rstd, in, gamma, beta, B, C, HW, G, eps);
}

void vqgpt_groupnorm_swish_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                                    const float *normed, const float *in, const float *mean,
                                    const float *rstd, const float *gamma, int B, int C, int HW,
                                    int G) {
  gn_backward(din, dgamma, dbeta, dout, normed, in, mean, rstd, gamma, B, C, HW, G);
}
