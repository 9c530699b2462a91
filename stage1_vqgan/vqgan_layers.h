// The VQGAN's layer structure, shared by inference (vqgan.c) and training (vqgan_train.c).
// Parameters live in one block; layers hold offsets into it, so the gradient and Adam-moment
// blocks of the same layout are addressed by the same offsets.
#ifndef VQGPT_VQGAN_LAYERS_H
#define VQGPT_VQGAN_LAYERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/conv2d.h"
#include "stage1_vqgan/vqgan.h"
#include "weights/safetensors.h"

#define VQGAN_GROUPS 32
#define VQGAN_GN_EPS 1e-6f
#define VQGAN_BETA 0.25f

typedef struct {
  char name[96];  // reference state_dict name
  int ndim;
  int64_t shape[4];
  size_t offset, numel;
} vqgan_param;

typedef struct {
  conv2d_shape s;
  size_t w, b;   // offsets of weight (c_out, c_in, k_h, k_w) and bias (c_out)
  int level;     // input resolution is (H >> level, W >> level)
  bool decoder;  // on the decode path (post_quant_conv and decoder.*)
} vqgan_conv;

typedef struct {
  int c;
  size_t gamma, beta;
} vqgan_norm;

typedef struct {
  int c_in, c_out, level;
  vqgan_norm norm1, norm2;
  vqgan_conv conv1, conv2;
  bool has_shortcut;  // 1x1 nin_shortcut when c_in != c_out
  vqgan_conv nin_shortcut;
} vqgan_resblock;

typedef struct {
  int c, level;
  vqgan_norm norm;
  vqgan_conv q, k, v, proj_out;
} vqgan_attnblock;

// One resolution level: blocks, each optionally followed by an attention block, then an
// optional resampling conv (Downsample in the encoder, Upsample in the decoder).
typedef struct {
  int n_blocks;
  vqgan_resblock *blocks;
  vqgan_attnblock *attn;  // n_blocks entries when has_attn
  bool has_attn;
  bool has_resample;
  vqgan_conv resample;
} vqgan_level;

typedef struct {
  vqgan_conv conv_in;
  vqgan_level levels[VQGAN_MAX_LEVELS];  // encoder: down.{i}; decoder: up.{i}
  vqgan_resblock mid_block_1, mid_block_2;
  vqgan_attnblock mid_attn_1;
  vqgan_norm norm_out;
  vqgan_conv conv_out;
} vqgan_coder;

struct vqgan {
  vqgan_config cfg;
  vqgan_coder enc, dec;
  vqgan_conv quant_conv, post_quant_conv;
  size_t
      embedding;  // (n_embed, embed_dim): quantize.embedding (nearest) or quantize.embed (Gumbel)
  size_t proj_w, proj_b;  // Gumbel only: quantize.proj, (n_embed, embed_dim, 1, 1) and (n_embed)
  vqgan_param *params;
  size_t n_params;
  size_t n_floats;
  float *w;            // the parameter block
  vqgan_conv **convs;  // every conv, for sizing scratch
  size_t n_convs;
  float *workspace;  // inference activations, kept between calls (grow-only)
  size_t workspace_floats;
};

// Adds the model's tensors and its format/config metadata to a writer (checkpoints add more).
int vqgpt_vqgan_write_tensors(const vqgan *m, st_writer *w);

// ---- Layer forwards shared by inference and training (vqgan_forward.c) ----
// Buffers are the caller's: inference passes the same temporaries for every block, training
// passes per-block buffers it keeps for the backward pass.

// GroupNorm statistics of one norm layer: mean and rstd, (B, VQGAN_GROUPS) each.
typedef struct {
  float *mean, *rstd;
} vqgan_gn_stats;

typedef struct {
  float *n1, *c1, *n2;  // norm1(x), conv1(swish(n1)), norm2(c1); (B, C, h, w)
  float *tmp;           // swish outputs (unless kept) and the shortcut, never kept
  vqgan_gn_stats st1, st2;
  float *s1, *s2;  // swish(n1), swish(n2) kept for the backward; NULL: into tmp
} vqgan_resblock_bufs;

typedef struct {
  float *hn, *q, *k, *v, *o;  // norm(x), projections, attention output; (B, C, N)
  float *probs;               // (B, N, N) kept for the backward, or the row-block scratch
  vqgan_gn_stats st;
  bool rows;  // inference: probs is vqgpt_attn2d_rows_scratch_size(N), not kept
} vqgan_attn_bufs;

// y += x over n values (residual connections and gradient sums).
void vqgpt_vqgan_add_inplace(float *y, const float *x, size_t n);
void vqgpt_vqgan_conv_forward(const vqgan *m, const vqgan_conv *c, float *out, const float *in,
                              int B, int h, int w, float *scratch);
// out = x + block(x); out must not alias x or any buffer.
void vqgpt_vqgan_resblock_forward(const vqgan *m, const vqgan_resblock *r, float *out,
                                  const float *x, vqgan_resblock_bufs *b, int B, int h, int w,
                                  float *scratch);
void vqgpt_vqgan_attn_forward(const vqgan *m, const vqgan_attnblock *a, float *out, const float *x,
                              vqgan_attn_bufs *b, int B, int h, int w, float *scratch);
// out = swish(groupnorm(x)); out may alias x.
void vqgpt_vqgan_norm_swish_forward(const vqgan *m, const vqgan_norm *n, float *out, const float *x,
                                    vqgan_gn_stats *st, int B, int hw);

// Nearest codebook entry for each of the B*h*w vectors of z (B, embed_dim, h, w), or with a
// Gumbel quantizer the argmax of quantize.proj(z); also writes zq (may be NULL) and the
// reference's legacy codebook+commitment loss (may be NULL; 0 for Gumbel).
// scratch: vqgpt_vqgan_quantize_scratch_size(m) floats.
size_t vqgpt_vqgan_quantize_scratch_size(const vqgan *m);
void vqgpt_vqgan_quantize(const vqgan *m, const float *z, int B, int h, int w, int32_t *indices,
                          float *zq, double *loss, float *scratch);
// zq (B, embed_dim, h, w) from indices (B, h, w).
void vqgpt_vqgan_lookup(const vqgan *m, const int32_t *indices, int B, int h, int w, float *zq);

// Sizes, in floats, that a forward pass over a (B, *, H, W) input needs: the largest activation,
// the largest conv scratch, the largest attention (B, C, N) and probs (B, N, N) buffers, and
// the largest attention length N.
typedef struct {
  size_t act, scratch, attn_cn, attn_nn, attn_n;
  size_t attn_rows;  // the row-block attention scratch of inference
} vqgan_sizes;
vqgan_sizes vqgpt_vqgan_forward_sizes(const vqgan *m, int B, int H, int W);

#endif
