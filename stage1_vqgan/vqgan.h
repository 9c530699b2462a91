// The VQGAN of the reference (taming.models.vqgan.VQModel): encoder -> quant_conv -> nearest
// codebook entry -> post_quant_conv -> decoder. Inference API; training lives in vqgan_train.h.
#ifndef VQGPT_VQGAN_H
#define VQGPT_VQGAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weights/safetensors.h"

#define VQGAN_MAX_LEVELS 8

// How latents become codes. VQGAN_NEAREST: VectorQuantizer2, the nearest codebook entry
// (quantize.embedding.weight). VQGAN_GUMBEL: GumbelVQ's GumbelQuantize (config "quantizer":
// "gumbel"), inference only: the code is the argmax of the logits of a 1x1 conv
// (quantize.proj, embed_dim -> n_embed), the reference's hard sample without its Gumbel noise;
// the codebook is quantize.embed.weight.
typedef enum { VQGAN_NEAREST, VQGAN_GUMBEL } vqgan_quantizer;

// The reference constructor parameters (VQModel: embed_dim, n_embed, ddconfig).
typedef struct {
  int embed_dim, n_embed;
  vqgan_quantizer quantizer;
  int ch, out_ch, in_channels, z_channels, resolution;
  int ch_mult[VQGAN_MAX_LEVELS];
  int n_levels;  // len(ch_mult)
  int num_res_blocks;
  int attn_resolutions[VQGAN_MAX_LEVELS];
  int n_attn;
  bool double_z;
} vqgan_config;

typedef struct vqgan vqgan;

// Parses the config JSON of a taming-vqgan file and checks it is self-consistent.
// `source` names the file in error messages.
int vqgpt_vqgan_config_parse(vqgan_config *cfg, const char *json, const char *source);
// The config as the JSON vqgpt_vqgan_config_parse reads (the reference's constructor parameters).
int vqgpt_vqgan_config_json(const vqgan_config *cfg, char *buf, size_t cap);
// The spatial downsampling factor, 2^(n_levels-1).
int vqgpt_vqgan_config_factor(const vqgan_config *cfg);

// Loads a taming-vqgan safetensors file (every tensor checked against the config). NULL on
// error, with vqgpt_last_error() naming the file and the problem.
vqgan *vqgpt_vqgan_load(const char *path);
// A model with the reference's default initialisation, for training and benchmarks.
vqgan *vqgpt_vqgan_create(const vqgan_config *cfg, uint64_t *rng);
void vqgpt_vqgan_free(vqgan *m);
const vqgan_config *vqgpt_vqgan_get_config(const vqgan *m);
// 64 bits that identify the codebook: a hash of its size and its entries rounded to half
// precision, so a model and its F16 export share it. A GPT records it to refuse other VQGANs.
uint64_t vqgpt_vqgan_fingerprint(const vqgan *m);
int vqgpt_vqgan_factor(const vqgan *m);
// Writes the model (reference names, format and config metadata) atomically.
int vqgpt_vqgan_save(const vqgan *m, const char *path);
// The same with the parameters stored as `storage` (ST_F32, ST_F16 or ST_BF16).
int vqgpt_vqgan_save_as(const vqgan *m, const char *path, st_dtype storage);

// Encode and decode reuse activation memory kept in the model, so calls on one model must
// not run concurrently.
// x: (B, in_channels, H, W) in [-1, 1], H and W multiples of the factor.
// indices: (B, H/f, W/f) nearest-code indices (Gumbel: argmax codes). z (may be NULL):
// (B, embed_dim, H/f, W/f), the quant_conv output. qloss (may be NULL): codebook + commitment
// loss (reference legacy form); 0 for a Gumbel quantizer.
int vqgpt_vqgan_encode(vqgan *m, const float *x, int B, int H, int W, int32_t *indices, float *z,
                       float *qloss);
// indices: (B, h, w), each in [0, n_embed). x: (B, out_ch, h*f, w*f).
int vqgpt_vqgan_decode(vqgan *m, const int32_t *indices, int B, int h, int w, float *x);

#endif
