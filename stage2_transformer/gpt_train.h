// Training the GPT on code grids (the reference Net2NetTransformer's training step): the
// condition tokens (one, or a prompt's text_len) + the h*w codes, inputs corrupted with probability
// 1 - pkeep, cross-entropy on the codes; AdamW with weight decay on Linear weights only, linear
// warm-up then cosine decay, global-norm gradient clipping; a held-out split for validation;
// checkpoints that resume bit-for-bit.
#ifndef VQGPT_GPT_TRAIN_H
#define VQGPT_GPT_TRAIN_H

#include <stdint.h>

#include "stage2_transformer/gpt.h"

typedef struct {
  int batch_size;      // sequences per step, all ranks together
  long steps;          // total optimizer steps
  float lr;            // peak learning rate
  float min_lr;        // learning rate at the end of the cosine decay
  long warmup;         // steps of linear warm-up from 0 to lr
  float weight_decay;  // on Linear weights only (reference: 0.01)
  float beta1, beta2;  // reference: 0.9, 0.95
  float eps;
  float grad_clip;     // max global gradient norm; 0 = off
  float pkeep;         // probability of keeping each input code (reference pkeep)
  float cond_drop;     // probability of replacing the condition by the null one (guidance)
  float val_fraction;  // share of the samples held out for validation
  uint64_t seed;       // split, data order, corruption and dropout
  // How the caller made the code grids (crop size, scale, crops per image, mirroring), as text
  // without quotes or backslashes, or NULL: recorded in checkpoints, and a resume whose codes
  // were made otherwise is refused (checkpoints from before it are not checked).
  const char *data_settings;
  // Data-parallel training (core/dist.h): the ranks (vqgpt_dist_size()) sharing each batch, 1 for
  // one process; not part of the run's recorded settings. Every rank draws the whole batch
  // (the same random stream as one process) and trains on rows [rank * batch_size / ranks,
  // ...) of it; gradients are averaged (weighted by each rank's target count), so the model
  // stays identical on every rank and equal to one process's (up to float rounding). Model
  // dropout too: a row's masks are those of its row of the whole batch (vqgpt_gpt_forward's row0).
  int ranks;
} gpt_train_options;

void vqgpt_gpt_train_options_default(gpt_train_options *o);
int vqgpt_gpt_train_options_check(const gpt_train_options *o);
// Learning rate for the update numbered `step` (0-based).
float vqgpt_gpt_train_lr(const gpt_train_options *o, long step);

// Training data: n code grids (n, h, w) in [0, n_codes), and (n) class labels when the model
// is class-conditional, or (n, text_len) prompt tokens (already shifted past the codes and
// padded, see gpt_config) when it is text-conditional. Referenced, not copied.
typedef struct {
  const int32_t *codes;
  const int32_t *labels;
  const int32_t *prompts;
  int n, h, w;
} gpt_dataset;

typedef struct {
  float loss;  // training loss of the batch (on corrupted inputs, with dropout)
  float lr;
  float grad_norm;  // before clipping
} gpt_step_stats;

typedef struct {
  gpt *model;
  gpt_train_options opt;
  gpt_dataset data;
  float *m, *v;  // (n_params) AdamW moments, same layout as the parameters
  long step;     // optimizer steps done
  uint64_t rng;  // order, corruption and dropout draws
  int n_train, n_val;
  int32_t *val_ids;    // (n_val) sample indices held out
  int32_t *train_ids;  // (n_train) the rest, in sample order
  int32_t *order;      // (n_train) this epoch's order: a permutation of train_ids
  int cursor;          // next position in order
  long epoch;
  int T;               // sequence length: n_cond + h*w - 1
  int32_t *idx, *tgt;  // (B, T) batch inputs and targets (the whole batch on every rank)
  int row0, rows;      // this rank's rows of the batch: [row0, row0 + rows)
} gpt_trainer;

// Checks the data against the model (codes within the vocabulary, labels within the classes,
// 1 + h*w - 1 <= block_size) and allocates the optimizer state.
int vqgpt_gpt_trainer_init(gpt_trainer *tr, gpt *model, const gpt_dataset *data,
                           const gpt_train_options *opt);
void vqgpt_gpt_trainer_free(gpt_trainer *tr);
// One optimizer step on the next batch. Fails ("step N: training diverged: ...") when the
// loss or the gradient norm is NaN or infinite (before the update) or the update makes a
// parameter non-finite.
int vqgpt_gpt_trainer_step(gpt_trainer *tr, gpt_step_stats *stats);
// Mean cross-entropy on the held-out samples (no corruption, no dropout); NAN if there are
// none. With several ranks, each takes a share and all get the mean.
int vqgpt_gpt_trainer_validate(gpt_trainer *tr, double *loss);
// A checkpoint: the model (loadable as a plain model) plus the AdamW moments ("opt.m.*",
// "opt.v.*"), the data order ("train.order") and the step, RNG and options in the metadata
// ("train_state"). Written atomically; refused when any parameter or moment is non-finite.
int vqgpt_gpt_trainer_save(const gpt_trainer *tr, const char *path);
// Restores a checkpoint written by vqgpt_gpt_trainer_save into an initialised trainer whose model
// has the same config: parameters, moments, step, RNG and data order. The trainer's options must be
// those the checkpoint recorded, except `steps` (a run can be extended): a difference is an
// error naming the option and both values.
int vqgpt_gpt_trainer_resume(gpt_trainer *tr, const char *path);

#endif
