// Below this many elements (or multiply-adds, where said) a loop runs on one thread: waking
// and joining the OpenMP team costs more than it saves, and much more when other processes
// share the cores and a spinning thread waits for a descheduled one.
#ifndef VQGPT_PARALLEL_H
#define VQGPT_PARALLEL_H

#include <stdbool.h>
#include <stddef.h>

#define VQGPT_PAR_MIN ((size_t)32768)

// Threads a kernel with per-thread scratch may use. Scratch sizes are computed when a model
// is built and calls come later, perhaps after the program raised the OpenMP thread count:
// the count is fixed by the first call (the then maximum) and can only go down afterwards,
// so scratch sized for it is always enough.
int vqgpt_scratch_threads(void);
// The threads such a kernel uses now: the current maximum, capped by vqgpt_scratch_threads().
int vqgpt_team_threads(void);

// dst[e] = (accumulate ? dst[e] : 0) + the sum over t < n_shares of shares[t * stride + e],
// for e < len: per-thread partial results (weight gradients) combined in thread order, so
// that the result does not depend on timing.
void vqgpt_sum_shares(float *dst, bool accumulate, const float *shares, size_t stride, int n_shares,
                      size_t len);

#endif
