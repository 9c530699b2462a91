// One training step of the reference's VQGAN objective (VQModel + VQLPIPSWithDiscriminator):
//   generator: mean|x - xrec| + perceptual_weight * LPIPS + codebook_weight * qloss
//              + lambda * disc_factor * (-mean D(xrec)),
//   lambda = clamp(|grad_GL L_rec| / (|grad_GL L_gan| + 1e-4), 0, 1e4) * disc_weight with GL
//   the decoder's last conv weight, disc_factor 0 before disc_start;
//   discriminator: disc_factor * hinge (or vanilla) loss on D(x) and D(xrec).
// Two Adam optimizers, betas (0.5, 0.9), lr = base_lr * batch, the generator step first.
// The discriminator step reuses the reconstruction of the generator step (the reference
// recomputes it after the generator update; the difference is one step of staleness).
#ifndef VQGPT_VQGAN_TRAIN_H
#define VQGPT_VQGAN_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "stage1_vqgan/discriminator.h"
#include "stage1_vqgan/lpips.h"
#include "stage1_vqgan/vqgan.h"

typedef struct {
  int batch, size;           // images per step (all ranks together), square crop side
  double base_lr;            // reference: 4.5e-6; lr = base_lr * batch
  double disc_weight;        // reference default 1.0 (ImageNet configs use 0.8)
  double disc_factor;        // 1.0
  long disc_start;           // step at which the GAN losses switch on
  double codebook_weight;    // 1.0
  double perceptual_weight;  // 1.0; forced to 0 without LPIPS weights
  bool hinge;                // hinge (default) or vanilla discriminator loss
  bool legacy_quant;         // the reference's legacy codebook/commitment form (default)
  patchgan_config disc;      // reference: input_nc 3, ndf 64, n_layers 3
  // Data-parallel training (core/dist.h): the ranks (vqgpt_dist_size()) sharing each batch, 1 for
  // one process. Each rank steps on its batch / ranks images (rank r: rows r * batch / ranks
  // onwards of the whole batch); gradients, the adaptive weight's last-layer gradients, the
  // discriminator's BatchNorm statistics (vqgpt_patchgan_set_sync_batchnorm) and the code
  // re-initialisation's candidates span all ranks, so the models stay identical on every rank
  // and equal to one process's with the whole batch (up to float rounding).
  int ranks;
} vqgan_train_opts;

void vqgpt_vqgan_train_defaults(vqgan_train_opts *o);

typedef struct {
  double loss, l1, lpips, qloss, g_loss, d_loss, d_weight, disc_factor;
  double logits_real, logits_fake;  // means
} vqgan_step_stats;

typedef struct vqgan_trainer vqgan_trainer;

// Takes ownership of neither model. lp may be NULL (no perceptual loss). d and lp must be built
// for batch / ranks images; with ranks > 1, d is switched to synchronised BatchNorm.
vqgan_trainer *vqgpt_vqgan_trainer_new(vqgan *g, patchgan *d, lpips *lp, const vqgan_train_opts *o);
void vqgpt_vqgan_trainer_free(vqgan_trainer *t);

// One generator + discriminator step on x (batch / ranks, 3, size, size), this rank's rows
// of the batch; step counts from 0. The stats are those of the whole batch. Fails
// ("training diverged: ...") when a loss term (l1, perceptual, codebook, g_loss, the adaptive
// weight, d_loss) is NaN or infinite, before any update uses it, or when an update makes a
// parameter non-finite.
int vqgpt_vqgan_trainer_step(vqgan_trainer *t, const float *x, long step, vqgan_step_stats *s);
// Codebook indices chosen in the last step for this rank's rows, (batch / ranks, size/f, size/f).
const int32_t *vqgpt_vqgan_trainer_indices(const vqgan_trainer *t);
// Replaces the codebook rows flagged in dead (n_embed) by encoder outputs of the last step
// drawn at random (from the whole batch: every rank draws the same), and clears their
// optimizer moments. Returns how many were replaced. With several ranks, dead must be the
// same on every rank (usage counted over all of them).
int vqgpt_vqgan_trainer_reinit_codes(vqgan_trainer *t, const bool *dead, uint64_t *rng);

// Checkpoint: the VQGAN (plain model tensors and metadata, loadable by vqgpt_vqgan_load), the
// discriminator as loss.discriminator.*, both Adam states as opt.{g,d}.{m,v}, and the
// caller's train_state JSON in the metadata. Written atomically; refused (nothing written) if
// any parameter, moment or running statistic is NaN or infinite.
int vqgpt_vqgan_trainer_save(const vqgan_trainer *t, const char *path, const char *train_state);
// Restores what vqgpt_vqgan_trainer_save wrote into this trainer's models and optimizers (format
// taming-vqgan, the same VQGAN and discriminator configs, every tensor finite and used);
// returns a malloc'd copy of the train_state JSON (caller frees), NULL on error.
char *vqgpt_vqgan_trainer_load(vqgan_trainer *t, const char *path);

#endif
