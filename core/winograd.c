#include "core/winograd.h"

#include <omp.h>
#include <string.h>

#include "core/blas.h"
#include "core/parallel.h"

// F(4x4, 3x3) with the interpolation points 0, +-1, +-2 (Lavin and Gray):
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A
// for a 6x6 input tile d, a 3x3 kernel g and a 4x4 output tile Y. (.) is the element-wise
// product; summed over input channels it becomes 36 matrix products, one per tile element
// xi = (k, m). The backward passes use the adjoints:
//   dM = A dY A^T,  dU = sum over tiles of dM (.) V,  dg = G^T dU G;
// the input gradient is the forward convolution of dY with the flipped, transposed kernel.
//
// Tiles are processed a tile row at a time with the tile index j innermost and contiguous,
// so every transform is a vector loop. Rows are first split into four column phases
// (phase q holds columns 4j + q - 1), which turns the stride-4 tile reads into unit stride.

#define WINO_XI 36

// The transforms are memory-bound vector loops; on CPUs with AVX-512 a second copy built for
// them runs 10-15% faster per convolution. GCC picks the copy when the program loads.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define WINO_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define WINO_VECTOR_CLONES
#endif
// Floats of transformed input plus products per work item: a block of tiles (whole tile rows,
// or part of one on very wide images) is sized to stay in the cache while its 36 products run.
#define WINO_BLOCK_FLOATS ((size_t)1 << 19)
// The transformed kernel and each thread's share of its gradient take 36 c_in c_out floats;
// beyond 256 x 256 channels that outgrows the scratch budget (and the direct path's long
// sgemm inner dimension is efficient there anyway).
#define WINO_MAX_CHANNEL_PAIRS (256 * 256)

// Below this many pixels per image the tiles are too few to amortise the kernel transform
// and the small products (measured: at 8x8 and 256 channels the direct path is as fast, its weight
// gradient faster).
#define WINO_MIN_PIXELS 256

typedef struct {
  int tw, th;      // tiles across and down
  int rows, cols;  // tiles per block: whole rows (cols = tw) or part of one row (rows = 1)
  int n_rb, n_cb;  // blocks down and across one image
  int n_threads;   // workers (each owns one scratch region)
  size_t per_thread;
} wino_plan;

bool vqgpt_winograd_applies(int c_in, int c_out, int k_h, int k_w, int stride, int pad_t, int pad_b,
                            int pad_l, int pad_r, int h, int w) {
  return k_h == 3 && k_w == 3 && stride == 1 && pad_t == 1 && pad_b == 1 && pad_l == 1 &&
         pad_r == 1 && c_in >= 16 && c_out >= 16 && h >= 4 && w >= 4 && h * w >= WINO_MIN_PIXELS &&
         c_in * c_out <= WINO_MAX_CHANNEL_PAIRS;
}

// Per-thread floats: transformed inputs and products for one block, the thread's share of a
// weight gradient, and the row buffers of the transforms.
static size_t per_thread_floats(int c_in, int c_out, int rows, int cols) {
  size_t cmax = c_in > c_out ? (size_t)c_in : (size_t)c_out;
  return WINO_XI * 2 * cmax * rows * cols + WINO_XI * (size_t)c_in * c_out +
         64 * ((size_t)cols + 2);
}

static wino_plan make_plan(int c_in, int c_out, int H, int W, int B) {
  wino_plan p;
  p.tw = (W + 3) / 4;
  p.th = (H + 3) / 4;
  p.n_threads = vqgpt_team_threads();
  int cmax = c_in > c_out ? c_in : c_out;
  size_t per_tile = WINO_XI * 2 * (size_t)cmax;
  int rows = 1, cols = p.tw;
  if (per_tile * p.tw <= WINO_BLOCK_FLOATS) {
    rows = (int)(WINO_BLOCK_FLOATS / (per_tile * p.tw));
    // Enough blocks for every thread when the batch alone does not provide them.
    int want_blocks = (p.n_threads + B - 1) / B;
    int most = (p.th + want_blocks - 1) / want_blocks;
    if (rows > most) rows = most;
    if (rows > p.th) rows = p.th;
  } else {
    cols = (int)(WINO_BLOCK_FLOATS / per_tile);
    if (cols < 1) cols = 1;
  }
  p.rows = rows;
  p.cols = cols;
  p.n_rb = (p.th + rows - 1) / rows;
  p.n_cb = (p.tw + cols - 1) / cols;
  p.per_thread = per_thread_floats(c_in, c_out, rows, cols);
  return p;
}

size_t vqgpt_winograd_scratch_size(int c_in, int c_out, int h, int w) {
  // A large batch gets the largest blocks; smaller batches split images into smaller ones,
  // and fewer threads than the scratch was sized for need less.
  wino_plan p = make_plan(c_in, c_out, h, w, 1 << 20);
  return WINO_XI * (size_t)c_in * c_out + (size_t)vqgpt_scratch_threads() * p.per_thread;
}

// ---- Transforms of one tile row; j runs over the row's tiles. ----

// p_q[j] = src[4j + q] for q < 4, j < n, and its inverse: rows split into column phases and
// joined again. Whole groups of four let the compiler vectorize with shuffles.
WINO_VECTOR_CLONES static void deinterleave4(float *restrict p0, float *restrict p1,
                                             float *restrict p2, float *restrict p3,
                                             const float *restrict src, int n) {
  for (int j = 0; j < n; j++) {
    p0[j] = src[4 * j];
    p1[j] = src[4 * j + 1];
    p2[j] = src[4 * j + 2];
    p3[j] = src[4 * j + 3];
  }
}
WINO_VECTOR_CLONES static void interleave4(float *restrict dst, const float *restrict p0,
                                           const float *restrict p1, const float *restrict p2,
                                           const float *restrict p3, int n) {
  for (int j = 0; j < n; j++) {
    dst[4 * j] = p0[j];
    dst[4 * j + 1] = p1[j];
    dst[4 * j + 2] = p2[j];
    dst[4 * j + 3] = p3[j];
  }
}

// p + q * ps holds phase q: p[q * ps + j] = row[first + 4 j + q] for j < n, zero where the
// column lies outside [0, W). The tiles whose four columns are all inside are split straight
// from the row; only the edges are checked one by one.
static void split_row(float *p, size_t ps, const float *row, int W, int first, int n) {
  int ja = first >= 0 ? 0 : (3 - first) / 4;                  // first j with first + 4j >= 0
  int jb = W - 4 - first >= 0 ? (W - 4 - first) / 4 + 1 : 0;  // j < jb: first + 4j + 3 < W
  if (ja > n) ja = n;
  if (jb > n) jb = n;
  if (jb < ja) jb = ja;
  for (int j = 0; j < n; j++) {
    if (j == ja) j = jb;  // the inside range is done below
    if (j >= n) break;
    for (int q = 0; q < 4; q++) {
      int x = first + 4 * j + q;
      p[q * ps + j] = x >= 0 && x < W ? row[x] : 0.0f;
    }
  }
  if (jb > ja)
    deinterleave4(p + ja, p + ps + ja, p + 2 * ps + ja, p + 3 * ps + ja, row + first + 4 * ja,
                  jb - ja);
}

// ph (6 rows, 4 phases, n + 1): rows 4 ti - 1 .. 4 ti + 4 of the plane, zero outside it;
// phase q, index j holds column 4 (j0 + j) + q - 1.
static void split_input_rows(float *ph, const float *plane, int H, int W, int ti, int j0, int n) {
  size_t n1 = (size_t)n + 1;
  for (int r = 0; r < 6; r++) {
    float *p = ph + r * 4 * n1;
    int y = 4 * ti - 1 + r;
    if (y < 0 || y >= H)
      memset(p, 0, 4 * n1 * sizeof *p);
    else
      split_row(p, n1, plane + (size_t)y * W, W, 4 * j0 - 1, (int)n1);
  }
}

// The 1-D transforms, each over n tiles at once (j innermost). Every stream is its own
// restrict parameter: with streams derived from one pointer GCC needs more run-time alias
// checks than it allows and leaves the loop scalar.

// o_k = (B^T x)_k, k < 6.
WINO_VECTOR_CLONES static void bt6_kernel(float *restrict o0, float *restrict o1,
                                          float *restrict o2, float *restrict o3,
                                          float *restrict o4, float *restrict o5,
                                          const float *restrict x0, const float *restrict x1,
                                          const float *restrict x2, const float *restrict x3,
                                          const float *restrict x4, const float *restrict x5,
                                          int n) {
  for (int j = 0; j < n; j++) {
    float a0 = x0[j], a1 = x1[j], a2 = x2[j], a3 = x3[j], a4 = x4[j], a5 = x5[j];
    o0[j] = 4 * a0 - 5 * a2 + a4;
    o1[j] = -4 * (a1 + a2) + a3 + a4;
    o2[j] = 4 * (a1 - a2) - a3 + a4;
    o3[j] = 2 * (a3 - a1) - a2 + a4;
    o4[j] = 2 * (a1 - a3) - a2 + a4;
    o5[j] = 4 * a1 - 5 * a3 + a5;
  }
}

// o_i = (A^T x)_i + bias, i < 4.
WINO_VECTOR_CLONES static void at6_kernel(float *restrict o0, float *restrict o1,
                                          float *restrict o2, float *restrict o3,
                                          const float *restrict x0, const float *restrict x1,
                                          const float *restrict x2, const float *restrict x3,
                                          const float *restrict x4, const float *restrict x5,
                                          float bias, int n) {
  for (int j = 0; j < n; j++) {
    float a0 = x0[j], a1 = x1[j], a2 = x2[j], a3 = x3[j], a4 = x4[j], a5 = x5[j];
    float p12 = a1 + a2, n12 = a1 - a2, p34 = a3 + a4, n34 = a3 - a4;
    o0[j] = a0 + p12 + p34 + bias;
    o1[j] = n12 + 2 * n34 + bias;
    o2[j] = p12 + 4 * p34 + bias;
    o3[j] = n12 + 8 * n34 + a5 + bias;
  }
}

// o_k = (A x)_k, k < 6: the adjoint of at6.
WINO_VECTOR_CLONES static void a4_kernel(float *restrict o0, float *restrict o1, float *restrict o2,
                                         float *restrict o3, float *restrict o4, float *restrict o5,
                                         const float *restrict x0, const float *restrict x1,
                                         const float *restrict x2, const float *restrict x3,
                                         int n) {
  for (int j = 0; j < n; j++) {
    float a0 = x0[j], a1 = x1[j], a2 = x2[j], a3 = x3[j];
    float p02 = a0 + a2, p13 = a1 + a3, q02 = a0 + 4 * a2, q13 = 2 * a1 + 8 * a3;
    o0[j] = a0;
    o1[j] = p02 + p13;
    o2[j] = p02 - p13;
    o3[j] = q02 + q13;
    o4[j] = q02 - q13;
    o5[j] = a3;
  }
}

// The same with inputs x + l * xs and outputs o + k * os; bt6 takes x_4 and x_5 separately.
static void bt6(float *o, size_t os, const float *x, size_t xs, const float *x4, const float *x5,
                int n) {
  bt6_kernel(o, o + os, o + 2 * os, o + 3 * os, o + 4 * os, o + 5 * os, x, x + xs, x + 2 * xs,
             x + 3 * xs, x4, x5, n);
}
static void at6(float *o, size_t os, const float *x, size_t xs, float bias, int n) {
  at6_kernel(o, o + os, o + 2 * os, o + 3 * os, x, x + xs, x + 2 * xs, x + 3 * xs, x + 4 * xs,
             x + 5 * xs, bias, n);
}
static void a4(float *o, size_t os, const float *x, size_t xs, int n) {
  a4_kernel(o, o + os, o + 2 * os, o + 3 * os, o + 4 * os, o + 5 * os, x, x + xs, x + 2 * xs,
            x + 3 * xs, n);
}

// V[(k*6 + m) * xs + j] = (B^T d_j B)[k][m] for the n tiles j0 .. j0 + n - 1 of one
// channel's tile row ti.
static void input_transform_row(float *V, size_t xs, const float *plane, int H, int W, int ti,
                                int j0, int n, float *buf) {
  size_t n1 = (size_t)n + 1;
  float *ph = buf;          // (6 rows, 4 phases, n1)
  float *t = ph + 24 * n1;  // (6 rows, 6, n): rows transformed along x
  split_input_rows(ph, plane, H, W, ti, j0, n);
  for (int r = 0; r < 6; r++) {
    const float *x = ph + r * 4 * n1;
    // Columns 4j + 3 and 4j + 4 are the next tile's phases 0 and 1.
    bt6(t + (size_t)r * 6 * n, (size_t)n, x, n1, x + 1, x + n1 + 1, n);
  }
  for (int m = 0; m < 6; m++) {
    const float *x = t + (size_t)m * n;
    size_t rs = (size_t)6 * n;
    bt6(V + (size_t)m * xs, 6 * xs, x, rs, x + 4 * rs, x + 5 * rs, n);
  }
}

// Output rows 4 ti .. 4 ti + 3, columns 4 j0 .. 4 (j0 + n) - 1 of one channel plane =
// A^T M_j A + bias, cropped to H x W.
static void output_transform_row(float *plane, const float *M, size_t xs, int H, int W, int ti,
                                 int j0, int n, float bias, float *buf) {
  float *s = buf;                 // (4, 6, n): M transformed along k
  float *y = s + (size_t)24 * n;  // (4 phases, n) and (4 n): one output row
  for (int m = 0; m < 6; m++)
    at6(s + (size_t)m * n, (size_t)6 * n, M + (size_t)m * xs, 6 * xs, 0.0f, n);
  int x0 = 4 * j0, width = W - x0 < 4 * n ? W - x0 : 4 * n;
  for (int i = 0; i < 4; i++) {
    int oy = 4 * ti + i;
    if (oy >= H) break;
    at6(y, (size_t)n, s + (size_t)i * 6 * n, (size_t)n, bias, n);
    float *row = plane + (size_t)oy * W + x0;
    bool whole = width == 4 * n;  // otherwise join in a buffer and crop
    float *dst = whole ? row : y + (size_t)4 * n;
    interleave4(dst, y, y + n, y + 2 * n, y + 3 * n, n);
    if (!whole) memcpy(row, dst, (size_t)width * sizeof *row);
  }
}

// dM[(k*6 + m) * xs + j] = (A g_j A^T)[k][m] for the 4x4 output-gradient tiles g_j, j0 <= j <
// j0 + n, of one channel's tile row ti (zero outside H x W).
static void grad_transform_row(float *dM, size_t xs, const float *plane, int H, int W, int ti,
                               int j0, int n, float *buf) {
  float *g = buf;                 // (4 rows, 4 phases, n)
  float *t = g + (size_t)16 * n;  // (4 rows, 6, n)
  for (int i = 0; i < 4; i++) {
    float *p = g + (size_t)i * 4 * n;
    int y = 4 * ti + i;
    if (y >= H)
      memset(p, 0, (size_t)4 * n * sizeof *p);
    else
      split_row(p, (size_t)n, plane + (size_t)y * W, W, 4 * j0, n);
  }
  for (int i = 0; i < 4; i++)
    a4(t + (size_t)i * 6 * n, (size_t)n, g + (size_t)i * 4 * n, (size_t)n, n);
  for (int m = 0; m < 6; m++) a4(dM + (size_t)m * xs, 6 * xs, t + (size_t)m * n, (size_t)6 * n, n);
}

// ---- Kernel transforms, over rows of n channel pairs ----

// o_k = (G x)_k, k < 6, for x_0 .. x_2.
static void g3_kernel(float *restrict o0, float *restrict o1, float *restrict o2,
                      float *restrict o3, float *restrict o4, float *restrict o5,
                      const float *restrict x0, const float *restrict x1, const float *restrict x2,
                      int n) {
  for (int i = 0; i < n; i++) {
    float a0 = x0[i], a1 = x1[i], a2 = x2[i];
    o0[i] = a0 / 4;
    o1[i] = -(a0 + a1 + a2) / 6;
    o2[i] = -(a0 - a1 + a2) / 6;
    o3[i] = a0 / 24 + a1 / 12 + a2 / 6;
    o4[i] = a0 / 24 - a1 / 12 + a2 / 6;
    o5[i] = a2;
  }
}

// o_a = (G^T x)_a, a < 3, for x_0 .. x_5.
static void gt6_kernel(float *restrict o0, float *restrict o1, float *restrict o2,
                       const float *restrict x0, const float *restrict x1, const float *restrict x2,
                       const float *restrict x3, const float *restrict x4, const float *restrict x5,
                       int n) {
  for (int i = 0; i < n; i++) {
    float a0 = x0[i], a1 = x1[i], a2 = x2[i], a3 = x3[i], a4 = x4[i], a5 = x5[i];
    o0[i] = a0 / 4 - (a1 + a2) / 6 + (a3 + a4) / 24;
    o1[i] = (a2 - a1) / 6 + (a3 - a4) / 12;
    o2[i] = (a3 + a4 - a1 - a2) / 6 + a5;
  }
}

static void g3(float *o, size_t os, const float *x, size_t xs, int n) {
  g3_kernel(o, o + os, o + 2 * os, o + 3 * os, o + 4 * os, o + 5 * os, x, x + xs, x + 2 * xs, n);
}
static void gt6(float *o, size_t os, const float *x, size_t xs, int n) {
  gt6_kernel(o, o + os, o + 2 * os, x, x + xs, x + 2 * xs, x + 3 * xs, x + 4 * xs, x + 5 * xs, n);
}

// U[xi][a][i] = (G g G^T)[xi] with g = weight[a][i] (a < c_out, i < c_in), or when
// `transpose` g = weight[i][a] flipped (a < c_in, i < c_out): the kernel of the input
// gradient. tmp holds 27 n floats.
static void weight_transform_row(float *U, size_t cc, const float *weight, int c_in, int c_out,
                                 bool transpose, int a, float *tmp) {
  int n = transpose ? c_out : c_in;
  float *g = tmp;                // (9, n): the kernels' taps as rows
  float *t = g + (size_t)9 * n;  // (6, 3, n): G g
  for (int i = 0; i < n; i++) {
    const float *w =
        transpose ? weight + ((size_t)i * c_in + a) * 9 : weight + ((size_t)a * c_in + i) * 9;
    for (int e = 0; e < 9; e++) g[(size_t)e * n + i] = transpose ? w[8 - e] : w[e];
  }
  for (int b = 0; b < 3; b++)
    g3(t + (size_t)b * n, (size_t)3 * n, g + (size_t)b * n, (size_t)3 * n, n);
  for (int k = 0; k < 6; k++)
    g3(U + (size_t)k * 6 * cc + (size_t)a * n, cc, t + (size_t)k * 3 * n, (size_t)n, n);
}

// dweight[co][i] += (G^T dU G) for the summed products dU (36, c_out, c_in) of row co. tmp
// holds 27 c_in floats.
static void weight_grad_row(float *dweight, const float *dU, size_t cc, int c_in, int co,
                            float *tmp) {
  int n = c_in;
  float *t = tmp;                 // (6, 3, n): dU G
  float *r = t + (size_t)18 * n;  // (9, n): G^T dU G
  for (int k = 0; k < 6; k++)
    gt6(t + (size_t)k * 3 * n, (size_t)n, dU + (size_t)k * 6 * cc + (size_t)co * n, cc, n);
  for (int b = 0; b < 3; b++)
    gt6(r + (size_t)b * n, (size_t)3 * n, t + (size_t)b * n, (size_t)3 * n, n);
  for (int i = 0; i < n; i++) {
    float *dw = dweight + ((size_t)co * n + i) * 9;
    for (int e = 0; e < 9; e++) dw[e] += r[(size_t)e * n + i];
  }
}

// ---- Blocks of tile rows ----

typedef struct {
  int b, r0, rows, j0, cols, tiles;
} wino_item;

static int n_items(const wino_plan *p, int B) { return B * p->n_rb * p->n_cb; }

static wino_item item_at(const wino_plan *p, int it) {
  wino_item w;
  int per_image = p->n_rb * p->n_cb, k = it % per_image;
  w.b = it / per_image;
  w.r0 = (k / p->n_cb) * p->rows;
  w.rows = p->th - w.r0 < p->rows ? p->th - w.r0 : p->rows;
  w.j0 = (k % p->n_cb) * p->cols;
  w.cols = p->tw - w.j0 < p->cols ? p->tw - w.j0 : p->cols;
  w.tiles = w.rows * w.cols;
  return w;
}

// V (36, C, tiles): the transformed input tiles of a block of one image (C, H, W).
static void transform_input_block(float *V, const float *img, int C, int H, int W,
                                  const wino_item *w, float *buf) {
  size_t xs = (size_t)C * w->tiles;
  for (int c = 0; c < C; c++)
    for (int i = 0; i < w->rows; i++)
      input_transform_row(V + (size_t)c * w->tiles + (size_t)i * w->cols, xs,
                          img + (size_t)c * H * W, H, W, w->r0 + i, w->j0, w->cols, buf);
}

// One thread's part of the work area: transformed inputs, products, a weight-gradient share
// (also the kernel transforms' temporary rows) and the tile-row buffers.
typedef struct {
  float *V, *M, *share, *buf;
} wino_region;

static wino_region region_of(const wino_plan *p, float *work, int thread, int c_in, int c_out) {
  size_t cmax = c_in > c_out ? (size_t)c_in : (size_t)c_out;
  size_t block = WINO_XI * cmax * (size_t)p->rows * p->cols;
  wino_region r;
  r.V = work + (size_t)thread * p->per_thread;
  r.M = r.V + block;
  r.share = r.M + block;
  r.buf = r.share + WINO_XI * (size_t)c_in * c_out;
  return r;
}

// U (36, rows, n) from the kernel; see weight_transform_row.
static void weight_transform(float *U, const float *weight, int c_in, int c_out, bool transpose,
                             const wino_plan *p, float *work) {
  size_t cc = (size_t)c_in * c_out;
  int rows = transpose ? c_in : c_out;
#pragma omp parallel num_threads(p->n_threads)
  {
    float *tmp = region_of(p, work, omp_get_thread_num(), c_in, c_out).share;
#pragma omp for schedule(static)
    for (int a = 0; a < rows; a++)
      weight_transform_row(U, cc, weight, c_in, c_out, transpose, a, tmp);
  }
}

// out (B, c_out, H, W) = conv(in (B, c_in, H, W)) for the transformed kernel U (36, c_out,
// c_in). The plan was made for the larger of the two channel counts.
static void convolve(float *out, const float *in, const float *U, const float *bias, int c_in,
                     int c_out, int B, int H, int W, const wino_plan *p, float *work) {
  int items = n_items(p, B);
  size_t cc = (size_t)c_in * c_out;
#pragma omp parallel num_threads(p->n_threads)
  {
    wino_region r = region_of(p, work, omp_get_thread_num(), c_in, c_out);
#pragma omp for schedule(static)
    for (int it = 0; it < items; it++) {
      wino_item w = item_at(p, it);
      const float *img = in + (size_t)w.b * c_in * H * W;
      float *dst = out + (size_t)w.b * c_out * H * W;
      transform_input_block(r.V, img, c_in, H, W, &w, r.buf);
      for (int xi = 0; xi < WINO_XI; xi++)
        vqgpt_sgemm(false, false, c_out, w.tiles, c_in, 1.0f, U + xi * cc, c_in,
                    r.V + (size_t)xi * c_in * w.tiles, w.tiles, 0.0f,
                    r.M + (size_t)xi * c_out * w.tiles, w.tiles);
      size_t xs = (size_t)c_out * w.tiles;
      for (int co = 0; co < c_out; co++)
        for (int i = 0; i < w.rows; i++)
          output_transform_row(dst + (size_t)co * H * W,
                               r.M + (size_t)co * w.tiles + (size_t)i * w.cols, xs, H, W, w.r0 + i,
                               w.j0, w.cols, bias ? bias[co] : 0.0f, r.buf);
    }
  }
}

// The forward convolution, or with `transpose` the input gradient's: the flipped kernel from
// c_out channels (of dout, given as in) to c_in.
static void transform_and_convolve(float *out, const float *in, const float *weight,
                                   const float *bias, int c_in, int c_out, bool transpose, int B,
                                   int H, int W, float *scratch) {
  wino_plan p = make_plan(c_in, c_out, H, W, B);
  float *work = scratch + WINO_XI * (size_t)c_in * c_out;
  weight_transform(scratch, weight, c_in, c_out, transpose, &p, work);
  if (transpose)
    convolve(out, in, scratch, NULL, c_out, c_in, B, H, W, &p, work);
  else
    convolve(out, in, scratch, bias, c_in, c_out, B, H, W, &p, work);
}

void vqgpt_winograd_forward(float *out, const float *in, const float *weight, const float *bias,
                            int c_in, int c_out, int B, int H, int W, float *scratch) {
  transform_and_convolve(out, in, weight, bias, c_in, c_out, false, B, H, W, scratch);
}

void vqgpt_winograd_backward_data(float *din, const float *dout, const float *weight, int c_in,
                                  int c_out, int B, int H, int W, float *scratch) {
  transform_and_convolve(din, dout, weight, NULL, c_in, c_out, true, B, H, W, scratch);
}

void vqgpt_winograd_backward_weight(float *dweight, const float *dout, const float *in, int c_in,
                                    int c_out, int B, int H, int W, float *scratch) {
  wino_plan p = make_plan(c_in, c_out, H, W, B);
  int items = n_items(&p, B);
  size_t cc = (size_t)c_in * c_out;
  float *dU = scratch, *work = scratch + WINO_XI * cc;
  int n_shares = 1;
#pragma omp parallel num_threads(p.n_threads)
  {
#pragma omp single
    n_shares = omp_get_num_threads();
    wino_region r = region_of(&p, work, omp_get_thread_num(), c_in, c_out);
    memset(r.share, 0, WINO_XI * cc * sizeof *r.share);
#pragma omp for schedule(static)
    for (int it = 0; it < items; it++) {
      wino_item w = item_at(&p, it);
      const float *img = in + (size_t)w.b * c_in * H * W;
      const float *g = dout + (size_t)w.b * c_out * H * W;
      transform_input_block(r.V, img, c_in, H, W, &w, r.buf);
      size_t xs = (size_t)c_out * w.tiles;
      for (int co = 0; co < c_out; co++)
        for (int i = 0; i < w.rows; i++)
          grad_transform_row(r.M + (size_t)co * w.tiles + (size_t)i * w.cols, xs,
                             g + (size_t)co * H * W, H, W, w.r0 + i, w.j0, w.cols, r.buf);
      for (int xi = 0; xi < WINO_XI; xi++)
        vqgpt_sgemm(false, true, c_out, c_in, w.tiles, 1.0f, r.M + (size_t)xi * c_out * w.tiles,
                    w.tiles, r.V + (size_t)xi * c_in * w.tiles, w.tiles, 1.0f, r.share + xi * cc,
                    c_in);
    }
  }
  vqgpt_sum_shares(dU, false, region_of(&p, work, 0, c_in, c_out).share, p.per_thread, n_shares,
                   WINO_XI * cc);
#pragma omp parallel num_threads(p.n_threads)
  {
    // The shares are summed; their space now holds each thread's temporary rows.
    float *tmp = region_of(&p, work, omp_get_thread_num(), c_in, c_out).share;
#pragma omp for schedule(static)
    for (int co = 0; co < c_out; co++) weight_grad_row(dweight, dU, cc, c_in, co, tmp);
  }
}
