// The reference PatchGAN discriminator (taming.modules.discriminator.model.NLayerDiscriminator
// with BatchNorm2d, use_actnorm=False):
//   main.0  conv 4x4 s2 p1 (bias) input_nc -> ndf, LeakyReLU 0.2
//   for n in 1..n_layers-1: conv 4x4 s2 p1 (no bias) -> ndf*min(2^n, 8), BatchNorm2d, LeakyReLU 0.2
//   conv 4x4 s1 p1 (no bias) -> ndf*min(2^n_layers, 8), BatchNorm2d, LeakyReLU 0.2
//   conv 4x4 s1 p1 (bias) -> 1 channel of logits
// Tensors carry the reference state_dict names: main.{i}.weight / bias for the convolutions and
// main.{i}.weight / bias / running_mean / running_var / num_batches_tracked for the norms.
#ifndef VQGPT_DISCRIMINATOR_H
#define VQGPT_DISCRIMINATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PATCHGAN_MAX_N_LAYERS 8
// input_nc and ndf at most this (the widest layer has 8 * ndf channels).
#define PATCHGAN_MAX_CHANNELS 4096

// The reference constructor parameters.
typedef struct {
  int input_nc, ndf, n_layers;  // n_layers in 1..PATCHGAN_MAX_N_LAYERS
} patchgan_config;

typedef struct patchgan patchgan;

// Parses the config JSON of a taming-patchgan file: {"input_nc", "ndf", "n_layers"}
// ("in_channels" is accepted for input_nc). `source` names the file in error messages.
int vqgpt_patchgan_config_parse(patchgan_config *cfg, const char *json, const char *source);

// A discriminator built for inputs of up to B images of H x W: parameters, gradients (same
// layout, zeroed), activations and scratch are all allocated here. n_slots forward passes can
// be kept for backward at once (the discriminator step needs 2: real and fake).
// vqgpt_patchgan_create initialises as the reference's weights_init, drawing from *rng: conv
// weights ~ N(0, 0.02), BatchNorm weights ~ N(1, 0.02) and biases 0, running stats 0 / 1; the conv
// biases keep PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)), which weights_init leaves.
// NULL on error (vqgpt_last_error() says why).
patchgan *vqgpt_patchgan_create(const patchgan_config *cfg, int B, int H, int W, int n_slots,
                                uint64_t *rng);
// Loads a taming-patchgan safetensors file (F32/F16/BF16; every tensor shape-checked; a missing
// num_batches_tracked counts as 0; a NaN or infinity, or a tensor the config does not describe,
// is an error).
patchgan *vqgpt_patchgan_load(const char *path, int B, int H, int W, int n_slots);
// Writes parameters, running statistics and I64 counters with format and config metadata,
// atomically.
int vqgpt_patchgan_save(const patchgan *d, const char *path);
void vqgpt_patchgan_free(patchgan *d);

const patchgan_config *vqgpt_patchgan_get_config(const patchgan *d);
// Logit map size for the built H x W.
int vqgpt_patchgan_out_h(const patchgan *d);
int vqgpt_patchgan_out_w(const patchgan *d);

// The trainable parameters as one block, and their gradients in the same layout (for the
// optimizer). Running statistics are not in it.
float *vqgpt_patchgan_params(patchgan *d);
float *vqgpt_patchgan_grads(patchgan *d);
size_t vqgpt_patchgan_num_params(const patchgan *d);
void vqgpt_patchgan_zero_grad(patchgan *d);
// Data-parallel training (core/dist.h): train-mode BatchNorm statistics, their running
// averages and their backward span every rank's batch (SyncBatchNorm), so that N ranks with
// B/N images each compute what one process does with B, and the running statistics agree on
// every rank. Off by default (each call then is the single-process one).
void vqgpt_patchgan_set_sync_batchnorm(patchgan *d, bool on);
// A float tensor by its state_dict name (parameters and running statistics): its data and
// element count, and in *grad (may be NULL) its gradient, NULL for running statistics.
// NULL if there is no such float tensor.
float *vqgpt_patchgan_tensor(patchgan *d, const char *name, size_t *numel, float **grad);
// main.{module}.num_batches_tracked of a BatchNorm module; -1 if module is not one.
int64_t vqgpt_patchgan_num_batches_tracked(const patchgan *d, int module);

// x: (B, input_nc, H, W) with B at most the built batch and H x W the built size; copied, so
// the caller may reuse it. logits: (B, 1, out_h, out_w). train: batch statistics, and the
// running statistics are updated (momentum 0.1, unbiased variance) as the reference's train
// mode; otherwise the running statistics normalise. The pass is kept in `slot` for backward.
int vqgpt_patchgan_forward(patchgan *d, int slot, const float *x, int B, bool train, float *logits);
// The running-statistics update (and num_batches_tracked count) of the train-mode pass kept
// in `slot`, applied once more: exactly what repeating that forward pass would do to them,
// without the convolutions. For a pass that must be repeated on unchanged parameters.
int vqgpt_patchgan_repeat_train_stats(patchgan *d, int slot);
// Backward of the train-mode pass kept in `slot`. dlogits: (B, 1, out_h, out_w).
// dx (B, input_nc, H, W) is overwritten (=) when non-NULL. Parameter gradients accumulate (+=)
// when param_grads, and are left untouched otherwise (the generator's adversarial step).
int vqgpt_patchgan_backward(patchgan *d, int slot, const float *dlogits, float *dx,
                            bool param_grads);

#endif
