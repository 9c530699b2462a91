// The transformer of the reference (taming.modules.transformer.mingpt.GPT): token embedding +
// learned position embedding, n_layer pre-LN blocks (causal multi-head self-attention, 4x GELU
// MLP), final LayerNorm, bias-free head. Forward, backward, and KV-cached incremental decoding.
#ifndef VQGPT_GPT_H
#define VQGPT_GPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/linear_half.h"
#include "weights/safetensors.h"

typedef enum { GPT_COND_NONE = 0, GPT_COND_CLASS = 1, GPT_COND_TEXT = 2 } gpt_cond_kind;

// Sequences are the condition tokens followed by the h*w codes in raster order.
// - Unconditional: one token, sos_token.
// - Class-conditional: one token, the class id (the reference's ImageNet models share one
//   vocabulary between classes and codes). With "null_class" (a token id, usually n_classes)
//   the model was trained with condition dropout and can be guided (classifier-free).
// - Text-conditional ("cond": "text"): text_len prompt tokens. The shared vocabulary is laid
//   out as [codes 0..n_codes) [text tokens n_codes + t, t < text_vocab) [pad], so
//   vocab_size = n_codes + text_vocab + 1. A prompt is its tokenizer ids shifted by n_codes,
//   right-padded with the pad token to text_len; the all-pad prompt is the null condition.
typedef struct {
  // The reference constructor parameters.
  int vocab_size, block_size, n_layer, n_head, n_embd;
  float embd_pdrop, resid_pdrop, attn_pdrop;  // dropout while training (reference default 0)
  // Our own keys (config JSON "cond", "n_classes", "sos_token", "n_codes", "grid").
  gpt_cond_kind cond;
  int n_classes;       // class-conditional: ids 0..n_classes-1
  int sos_token;       // unconditional: the start token (default 0)
  int n_codes;         // tokens 0..n_codes-1 are image codes (default vocab_size)
  int grid_h, grid_w;  // the code grid the model was trained on; 0 when unknown
  int null_class;      // class: token of the null condition for guidance; 0 when none
  int text_len;        // text: prompt tokens in front of the codes
  int text_vocab;      // text: the tokenizer's vocabulary size
} gpt_config;

// Number of condition tokens in front of the codes.
int vqgpt_gpt_n_cond(const gpt_config *cfg);
// Text models: the pad token (n_codes + text_vocab).
int vqgpt_gpt_text_pad(const gpt_config *cfg);
// The trained grid (the sliding window): the config's "grid", else the square of the codes a
// block holds (block_size + 1 - n_cond, the reference's layout, or block_size - n_cond) when
// that is a perfect square. Returns -1 (and an error) when neither is known.
int vqgpt_gpt_trained_grid(const gpt_config *cfg, int *h, int *w);

// What a model knows about itself beyond its architecture (safetensors metadata and one U8
// tensor), kept through training, export and conversion. Strings are JSON texts; NULL if absent.
typedef struct {
  char *class_names;  // "class_names": JSON array of strings, one per class id
  char *sampling;     // "sampling": recommended settings {"cfg", "top_k", "top_p", "temperature"}
  char *vqgan;  // "vqgan": the first stage it was trained with {"file", "fingerprint", "n_embed"}
  uint8_t *tokenizer;  // tensor "tokenizer": the SentencePiece model proto (text models)
  size_t tokenizer_bytes;
} gpt_card;
void vqgpt_gpt_card_free(gpt_card *card);
// Reads the card from an open model file; `source` names it in errors.
int vqgpt_gpt_card_read(gpt_card *card, const st_file *f, const char *source);
// Adds the card's metadata and tensor to a writer (the card must outlive vqgpt_st_writer_save).
int vqgpt_gpt_card_write(const gpt_card *card, st_writer *w);

// Parses a taming-gpt config JSON and checks it; `source` names the file in errors.
int vqgpt_gpt_config_parse(gpt_config *cfg, const char *json, const char *source);
int vqgpt_gpt_config_check(const gpt_config *cfg, const char *source);
// The config as JSON (malloc'd; NULL on allocation failure).
char *vqgpt_gpt_config_to_json(const gpt_config *cfg);
// Fills the defaults for our own keys from the reference ones.
void vqgpt_gpt_config_defaults(gpt_config *cfg);

// Views into one parameter-sized block (parameters, gradients, Adam moments share it).
// Per-layer tensors are stacked over layers: (L, ...). Within qkv_w the rows are the
// reference's query, key and value weights in that order, so one product yields all three.
typedef struct {
  float *tok_emb;        // (V, C)
  float *pos_emb;        // (block_size, C)
  float *ln1_w, *ln1_b;  // (L, C)
  float *qkv_w;          // (L, 3C, C)
  float *qkv_b;          // (L, 3C)
  float *proj_w;         // (L, C, C)
  float *proj_b;         // (L, C)
  float *ln2_w, *ln2_b;  // (L, C)
  float *fc_w;           // (L, 4C, C)   mlp.0
  float *fc_b;           // (L, 4C)
  float *fcproj_w;       // (L, C, 4C)   mlp.2
  float *fcproj_b;       // (L, C)
  float *lnf_w, *lnf_b;  // (C)
  float *head_w;         // (V, C)
} gpt_params;

// The matrices a sampling-only model keeps in half precision, laid out as in gpt_params.
typedef struct {
  uint16_t *tok_emb, *qkv_w, *proj_w, *fc_w, *fcproj_w, *head_w;
} gpt_half_params;

// One reference state_dict tensor as a range of the parameter block.
typedef struct {
  char name[64];
  size_t offset, numel;
  int ndim;
  int64_t shape[3];
  bool decay;  // weight decay applies (Linear weights only, as configure_optimizers decides)
} gpt_tensor_info;

// Activations of a forward pass at batch shape (B, T), kept for backward.
typedef struct {
  float *encoded;              // (B, T, C) embeddings after dropout
  float *ln1;                  // (L, B, T, C)
  float *ln1_mean, *ln1_rstd;  // (L, B, T)
  float *qkv;                  // (L, B, T, 3C)
  float *atty;                 // (L, B, T, C)
  float *att;                  // (L, B, H, T, T)
  float *residual2;            // (L, B, T, C) after the attention branch
  float *ln2;                  // (L, B, T, C)
  float *ln2_mean, *ln2_rstd;  // (L, B, T)
  float *fch;                  // (L, B, T, 4C) before GELU
  float *fch_gelu;             // (L, B, T, 4C)
  float *residual3;            // (L, B, T, C) block output
  float *lnf;                  // (B, T, C)
  float *lnf_mean, *lnf_rstd;  // (B, T)
  float *logits;               // (B, T, V)
  float *probs;                // (B, T, V) softmax, then dlogits in backward
  float *losses;               // (B, T)
  int32_t *targets;            // (B, T) copy of the targets of the last forward
  int32_t *inputs;             // (B, T) copy of its input tokens
  // backward scratch
  float *dresidual;  // (B, T, C)
  float *dln;        // (B, T, C)
  float *dbuf;       // (B, T, 4C)
  float *dqkv;       // (B, T, 3C)
  float *datt;       // (B, H, T, T)
} gpt_acts;

typedef struct {
  gpt_config cfg;
  gpt_card card;
  size_t n_params;
  float *params;  // (n_params); only the vectors for a model with half_weights
  gpt_params p;
  // A model from vqgpt_gpt_load_for_sampling of an F16 or BF16 file keeps the token embedding and
  // the Linear weight matrices in that format (h, in half_block): their views in p are NULL and
  // params holds the other tensors. Such a model only samples (vqgpt_gpt_step, vqgpt_gpt_prefill).
  bool half_weights;
  half_format half_fmt;
  uint16_t *half_block;
  gpt_half_params h;
  float *grads;  // (n_params), NULL until vqgpt_gpt_alloc_grads
  gpt_params g;
  gpt_tensor_info *tensors;
  size_t n_tensors;
  // Activations, sized by vqgpt_gpt_build.
  int B, T;
  float *act_block;
  int32_t *act_targets;
  gpt_acts a;
  // State of the last forward.
  bool train;  // dropout active
  uint64_t drop_seed;
  int drop_row0;  // the batch row of row 0 in the dropout masks' counters
  bool have_loss;
  float loss;
  int n_valid;
} gpt;

// Number of floats in the parameter block.
size_t vqgpt_gpt_count_params(const gpt_config *cfg);
// A model with the reference initialisation (_init_weights: Linear/Embedding weights
// N(0, 0.02), biases 0, LayerNorm 1/0, pos_emb 0).
gpt *vqgpt_gpt_create(const gpt_config *cfg, uint64_t *rng);
// Loads a taming-gpt safetensors file: F32/F16/BF16 tensors, each checked against the
// config and finite. Besides the model only the tensors matching vqgpt_GPT_FILE_EXTRAS may be in it
// (they are ignored); any other is an error naming it.
gpt *vqgpt_gpt_load(const char *path);
// The same for sampling only: a file whose weight matrices are all F16 (or all BF16) keeps
// them in that format (half_weights), halving the memory and the bytes each decoding step
// reads; logits equal vqgpt_gpt_load's up to float32 summation order. Other files load as
// vqgpt_gpt_load.
gpt *vqgpt_gpt_load_for_sampling(const char *path);
// vqgpt_st_check_all_used patterns (NULL-terminated) of what the project writes beside a GPT on
// purpose: the trainer's optimizer state and data order, attention-mask buffers.
extern const char *const vqgpt_GPT_FILE_EXTRAS[];
// Loads the parameters from an open file (names prefixed by `prefix`, e.g. "" or "opt.m.")
// into block (n_params).
int vqgpt_gpt_read_block(const gpt *m, const st_file *f, const char *prefix, float *block);
void vqgpt_gpt_free(gpt *m);
// Writes model tensors (reference names, F32) with format and config metadata, atomically.
int vqgpt_gpt_save(const gpt *m, const char *path);
// The same with the parameters stored as `storage` (ST_F32, ST_F16 or ST_BF16).
int vqgpt_gpt_save_as(const gpt *m, const char *path, st_dtype storage);
// Adds the tensors of `block` to a writer under prefix + reference name. The names are
// allocated into *names (freed with vqgpt_gpt_free_names after vqgpt_st_writer_save).
int vqgpt_gpt_writer_add_block(const gpt *m, st_writer *w, const char *prefix, const float *block,
                               char ***names);
void vqgpt_gpt_free_names(const gpt *m, char **names);
const gpt_tensor_info *vqgpt_gpt_find_tensor(const gpt *m, const char *name);

int vqgpt_gpt_alloc_grads(gpt *m);
void vqgpt_gpt_zero_grad(gpt *m);
// Sizes the activations for batch shape (B, T), T <= block_size. Cheap if already that size.
int vqgpt_gpt_build(gpt *m, int B, int T);

// idx: (B, T) tokens in [0, vocab). targets: (B, T) or NULL; entries < 0 are ignored by the
// loss. With targets, m->loss is the mean cross-entropy. train enables dropout, with masks
// drawn from drop_seed. The masks of row b are those of row row0 + b of a larger batch run at
// once (0 when this is the whole batch), so that data-parallel ranks, each running its rows
// row0.. of one batch, together get the masks of one process. Logits land in m->a.logits
// (B, T, V). Calls vqgpt_gpt_build as needed.
int vqgpt_gpt_forward(gpt *m, const int32_t *idx, const int32_t *targets, int B, int T, bool train,
                      uint64_t drop_seed, int row0);
// Gradients of the last forward's loss accumulate (+=) into m->grads.
int vqgpt_gpt_backward(gpt *m);

// Scratch of a batched sampling forward (vqgpt_gpt_extend): activations of `rows` token rows,
// grown on demand, and per-thread attention scores.
typedef struct {
  size_t rows;                           // capacity
  float *x, *ln, *qkv, *atty, *tmp, *h;  // (rows, C | C | 3C | C | C | 4C)
  float *scores;                         // per thread (block_size, block_size)
  float *wtile;  // half-weight models: weight rows converted for sgemm (vqgpt_linear_forward_half)
  float *block;
} gpt_work;

void vqgpt_gpt_work_free(gpt_work *w);

// Key/value cache of B sequences that advance together.
typedef struct {
  int B, Tmax, T;  // T: positions filled so far
  float *k, *v;    // (L, B, H, Tmax, hs)
  gpt_work work;   // for vqgpt_gpt_step and vqgpt_gpt_prefill
} gpt_kv;

int vqgpt_gpt_kv_init(gpt_kv *kv, const gpt *m, int B);
void vqgpt_gpt_kv_free(gpt_kv *kv);
void vqgpt_gpt_kv_reset(gpt_kv *kv);

// One cache's share of a batched forward: each of its kv->B sequences gets `count` tokens
// appended, at positions kv->T.. or, with restart, at 0.. (the cache starts over).
typedef struct {
  gpt_kv *kv;
  const int32_t *tokens;  // (kv->B, count)
  int count;
  bool restart;
} gpt_part;

// Appends the parts' tokens to their caches in one forward whose matrix products take every
// new row of every part together (caches of different lengths and windows: the sliding-window
// sampler's lanes), and writes the logits after each sequence's last new token: (sum of
// kv->B, V), in part order. The same as the parts one after another; only the rows that feed a
// logit go through the last layer's attention and MLP.
int vqgpt_gpt_extend(const gpt *m, gpt_work *w, gpt_part *parts, int n_parts, float *logits);
// Appends one token per sequence (tokens: (B)) at position kv->T and writes the next-token
// logits (B, V).
int vqgpt_gpt_step(const gpt *m, gpt_kv *kv, const int32_t *tokens, float *logits);
// Restarts the cache with T tokens per sequence (tokens: (B, T), positions 0..T-1) and writes
// the logits after the last token (B, V): the same as vqgpt_gpt_kv_reset and T steps, as
// matrix products over all B*T rows.
int vqgpt_gpt_prefill(const gpt *m, gpt_kv *kv, const int32_t *tokens, int T, float *logits);

#endif
