// AdamW exactly as torch.optim.AdamW updates a parameter (decoupled weight decay, bias
// corrections applied to the step size and to sqrt(v)), plus global-norm gradient clipping.
#ifndef VQGPT_ADAMW_H
#define VQGPT_ADAMW_H

#include <stdbool.h>
#include <stddef.h>

// param, grad, m, v: (n). step counts from 1 (the update being made). Returns whether every
// updated parameter is finite (checked in the same pass, so that a diverging run is caught at
// the step that diverged).
bool vqgpt_adamw_update(float *param, const float *grad, float *m, float *v, size_t n, float lr,
                        float beta1, float beta2, float eps, float weight_decay, long step);

// sqrt(sum grad^2) over (n), summed in fixed blocks so it does not depend on thread count.
double vqgpt_adamw_global_norm(const float *grad, size_t n);
// Scales grad (n) by max_norm / (norm + 1e-6) when norm > max_norm, as clip_grad_norm_ does.
// Returns the factor applied (1 when none).
float vqgpt_adamw_clip(float *grad, size_t n, double norm, double max_norm);

#endif
