// BatchNorm2d as torch.nn.BatchNorm2d (affine, track_running_stats): statistics per channel
// over (B, H, W).
#ifndef VQGPT_BATCHNORM_H
#define VQGPT_BATCHNORM_H

// Train mode. out, in: (B, C, HW); gamma, beta, mean, rstd, running_mean, running_var: (C).
// Normalises with the batch mean and biased variance; saves mean and rstd = 1/sqrt(var + eps)
// for backward; then updates running_mean/running_var (may both be NULL to skip) as PyTorch
// does: r = (1 - momentum) * r + momentum * stat, with the UNBIASED variance (n / (n - 1))
// for running_var. B*HW must be at least 2 when the running stats are updated (PyTorch
// refuses a single value per channel too). out may alias in.
void vqgpt_batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                                   float *running_var, const float *in, const float *gamma,
                                   const float *beta, int B, int C, int HW, float eps,
                                   float momentum);

// Only the running-statistics update of vqgpt_batchnorm_forward_train for this input, bit for bit:
// what a second identical train-mode forward would do to them.
void vqgpt_batchnorm_update_running(float *running_mean, float *running_var, const float *in, int B,
                                    int C, int HW, float momentum);

// Eval mode: normalises with the running statistics. out may alias in.
void vqgpt_batchnorm_forward_eval(float *out, const float *in, const float *gamma,
                                  const float *beta, const float *running_mean,
                                  const float *running_var, int B, int C, int HW, float eps);

// Backward of the train-mode forward (the batch statistics depend on the input).
// din (B, C, HW) is overwritten (=) when non-NULL; dgamma, dbeta (C) accumulate (+=) when
// non-NULL. in, mean, rstd: as given to / saved by vqgpt_batchnorm_forward_train. din may alias
// dout.
void vqgpt_batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                              const float *in, const float *mean, const float *rstd,
                              const float *gamma, int B, int C, int HW);

// Synchronised BatchNorm for data-parallel training (core/dist.h; PyTorch's SyncBatchNorm):
// the statistics are those of the whole batch, every rank's (B, HW) together, so that N ranks
// compute what one process would on the whole batch. Every rank must call them in the same
// order with the same B, C, HW. Arguments and aliasing as above; dgamma and dbeta accumulate
// this rank's share only (the caller sums parameter gradients over the ranks). With one rank
// the results are those of the functions above, bit for bit. Return -1 when out of memory.
int vqgpt_batchnorm_forward_train_dist(float *out, float *mean, float *rstd, float *running_mean,
                                       float *running_var, const float *in, const float *gamma,
                                       const float *beta, int B, int C, int HW, float eps,
                                       float momentum);
int vqgpt_batchnorm_update_running_dist(float *running_mean, float *running_var, const float *in,
                                        int B, int C, int HW, float momentum);
int vqgpt_batchnorm_backward_dist(float *din, float *dgamma, float *dbeta, const float *dout,
                                  const float *in, const float *mean, const float *rstd,
                                  const float *gamma, int B, int C, int HW);

#endif
