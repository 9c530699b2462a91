// Scalar losses of the stage-1 objective with their gradients. Every gradient is overwritten
// (=) and may be NULL when not wanted; the returned value is the loss. Sums run in double.
#ifndef VQGPT_LOSS_H
#define VQGPT_LOSS_H

#include <stddef.h>

// mean(|x - y|) over n values; dx = d/dx = sign(x - y) / n (0 where x == y, as torch.sign).
float vqgpt_loss_l1_mean(float *dx, const float *x, const float *y, size_t n);

// The PatchGAN discriminator losses of the reference, over logit maps real (n_real values)
// and fake (n_fake values), with gradients dreal, dfake w.r.t. both maps.
// hinge:   0.5 * (mean(relu(1 - real)) + mean(relu(1 + fake)))
float vqgpt_loss_d_hinge(float *dreal, float *dfake, const float *real, size_t n_real,
                         const float *fake, size_t n_fake);
// vanilla: 0.5 * (mean(softplus(-real)) + mean(softplus(fake)))
float vqgpt_loss_d_vanilla(float *dreal, float *dfake, const float *real, size_t n_real,
                           const float *fake, size_t n_fake);

// The generator's adversarial loss -mean(fake); dfake = -1 / n.
float vqgpt_loss_g(float *dfake, const float *fake, size_t n);

#endif
