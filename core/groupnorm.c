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

void groupnorm_forward(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                       const float *beta, int B, int C, int HW, int G, float eps) {
  int cpg = C / G;
  size_t hw = (size_t)HW, gsize = (size_t)cpg * hw;
#pragma omp parallel for schedule(dynamic, 1) if ((size_t)B * C * hw >= 32768)
  for (int bg = 0; bg < B * G; bg++) {
    int b = bg / G, g = bg % G;
    const float *x = in + ((size_t)b * C + (size_t)g * cpg) * hw;  // (cpg, HW)
    float *y = out + ((size_t)b * C + (size_t)g * cpg) * hw;       // (cpg, HW)
    double mu, r;
    gn_group_stats(x, gsize, eps, &mu, &r);
    mean[bg] = (float)mu;
    rstd[bg] = (float)r;
    for (int cc = 0; cc < cpg; cc++) {
      int c = g * cpg + cc;
      float a = (float)(r * gamma[c]);
      float sh = (float)(beta[c] - mu * r * gamma[c]);
      const float *xc = x + (size_t)cc * hw;
      float *yc = y + (size_t)cc * hw;
      for (size_t i = 0; i < hw; i++) yc[i] = xc[i] * a + sh;
    }
  }
}

void groupnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                        const float *in, const float *mean, const float *rstd, const float *gamma,
                        int B, int C, int HW, int G) {
  int cpg = C / G;
  size_t hw = (size_t)HW;
  double n = (double)cpg * hw;
  // Each thread owns whole groups, hence whole channels of dgamma/dbeta: no races.
#pragma omp parallel for schedule(dynamic, 1) if ((size_t)B * C * hw >= 32768)
  for (int g = 0; g < G; g++) {
    for (int b = 0; b < B; b++) {
      size_t off = ((size_t)b * C + (size_t)g * cpg) * hw;
      const float *x = in + off, *dy = dout + off;  // (cpg, HW)
      float *dx = din + off;                        // (cpg, HW)
      double mu = mean[b * G + g], r = rstd[b * G + g];
      // With xhat = (x - mu) r and dyh = dy gamma:
      // dx = r (dyh - mean(dyh) - xhat mean(dyh xhat)), linear in (dy, x) per channel.
      double sum_dyh = 0, sum_dyh_xhat = 0;
      for (int cc = 0; cc < cpg; cc++) {
        int c = g * cpg + cc;
        double sdy, sdyxc;
        gn_dot(dy + (size_t)cc * hw, x + (size_t)cc * hw, (float)mu, hw, &sdy, &sdyxc);
        double dot_xhat = r * sdyxc;  // sum(dy * xhat) over this channel
        dgamma[c] += (float)dot_xhat;
        dbeta[c] += (float)sdy;
        sum_dyh += gamma[c] * sdy;
        sum_dyh_xhat += gamma[c] * dot_xhat;
      }
      double k = -r * r * sum_dyh_xhat / n;  // coefficient of x
      double k0 = -r * sum_dyh / n - k * mu;     // constant term
      for (int cc = 0; cc < cpg; cc++) {
        int c = g * cpg + cc;
        float a = (float)(r * gamma[c]), kx = (float)k, kc = (float)k0;
        const float *xc = x + (size_t)cc * hw, *dyc = dy + (size_t)cc * hw;
        float *dxc = dx + (size_t)cc * hw;
        for (size_t i = 0; i < hw; i++) dxc[i] = a * dyc[i] + kx * xc[i] + kc;
      }
    }
  }
}

// Per group, the statistics of groupnorm_forward; then each channel is normalized and
// activated while its values are in registers, instead of a second pass over memory.
void groupnorm_swish_forward(float *normed, float *act, float *mean, float *rstd,
                             const float *in, const float *gamma, const float *beta, int B,
                             int C, int HW, int G, float eps) {
  int cpg = C / G;
  size_t hw = (size_t)HW, gsize = (size_t)cpg * hw;
#pragma omp parallel for schedule(dynamic, 1) if ((size_t)B * C * hw >= 32768)
  for (int bg = 0; bg < B * G; bg++) {
    int b = bg / G, g = bg % G;
    size_t off = ((size_t)b * C + (size_t)g * cpg) * hw;
    const float *x = in + off;                       // (cpg, HW)
    float *y = normed + off, *s = act + off;         // (cpg, HW)
    double mu, r;
    gn_group_stats(x, gsize, eps, &mu, &r);
    mean[bg] = (float)mu;
    rstd[bg] = (float)r;
    for (int cc = 0; cc < cpg; cc++) {
      int c = g * cpg + cc;
      float a = (float)(r * gamma[c]);
      float sh = (float)(beta[c] - mu * r * gamma[c]);
      const float *xc = x + (size_t)cc * hw;
      float *yc = y + (size_t)cc * hw, *sc = s + (size_t)cc * hw;
#pragma omp simd
      for (size_t i = 0; i < hw; i++) {
        float v = xc[i] * a + sh;
        yc[i] = v;
        sc[i] = v / (1.0f + vqgpt_expf(-v));
      }
    }
  }
}

// As groupnorm_backward, with dy = dout * swish'(normed) formed channel by channel in din:
// the channel is still in cache for the sums and the final pass, and no (B, C, HW)
// temporary makes a round trip through memory.
void groupnorm_swish_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                              const float *normed, const float *in, const float *mean,
                              const float *rstd, const float *gamma, int B, int C, int HW,
                              int G) {
  int cpg = C / G;
  size_t hw = (size_t)HW;
  double n = (double)cpg * hw;
  // Each thread owns whole groups, hence whole channels of dgamma/dbeta: no races.
#pragma omp parallel for schedule(dynamic, 1) if ((size_t)B * C * hw >= 32768)
  for (int g = 0; g < G; g++) {
    for (int b = 0; b < B; b++) {
      size_t off = ((size_t)b * C + (size_t)g * cpg) * hw;
      const float *x = in + off, *dact = dout + off, *nv = normed + off;  // (cpg, HW)
      float *dx = din + off;                                              // (cpg, HW)
      double mu = mean[b * G + g], r = rstd[b * G + g];
      double sum_dyh = 0, sum_dyh_xhat = 0;
      for (int cc = 0; cc < cpg; cc++) {
        int c = g * cpg + cc;
        size_t co = (size_t)cc * hw;
        // dy = dact * swish'(normed) into dx, summed (as gn_dot) while in registers.
        double sdy = 0, sdyxc = 0;
        const float muf = (float)mu;
        for (size_t i0 = 0; i0 < hw; i0 += GN_BLOCK) {
          size_t i1 = hw - i0 < GN_BLOCK ? hw : i0 + GN_BLOCK;
          float a = 0, q = 0;
#pragma omp simd reduction(+ : a, q)
          for (size_t i = co + i0; i < co + i1; i++) {
            float v = nv[i];
            float sg = 1.0f / (1.0f + vqgpt_expf(-v));
            float d = dact[i] * sg * (1.0f + v * (1.0f - sg));
            dx[i] = d;
            a += d;
            q += d * (x[i] - muf);
          }
          sdy += a;
          sdyxc += q;
        }
        double dot_xhat = r * sdyxc;
        dgamma[c] += (float)dot_xhat;
        dbeta[c] += (float)sdy;
        sum_dyh += gamma[c] * sdy;
        sum_dyh_xhat += gamma[c] * dot_xhat;
      }
      double k = -r * r * sum_dyh_xhat / n;
      double k0 = -r * sum_dyh / n - k * mu;
      for (int cc = 0; cc < cpg; cc++) {
        int c = g * cpg + cc;
        float a = (float)(r * gamma[c]), kx = (float)k, kc = (float)k0;
        const float *xc = x + (size_t)cc * hw;
        float *dxc = dx + (size_t)cc * hw;
        for (size_t i = 0; i < hw; i++) dxc[i] = a * dxc[i] + kx * xc[i] + kc;
      }
    }
  }
}
