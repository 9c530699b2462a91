// Sampling of code grids with the GPT, in raster order of the whole grid. A grid no larger
// than the model's trained grid (the window) is one sequence: the condition tokens, then the
// codes. A larger grid is sampled with the reference's sliding window (taming-transformers'
// scripts/sample_conditional.py, generalised to any window shape): position (i, j) is drawn
// from the GPT's logits given the condition and the tokens before it inside a window of the
// trained size placed around it (vqgpt_sampler_window_local).
//
// Cost: a window's keys and values are reused while the window stays where it is (the top band
// and the left and right borders, where the rule keeps it still for many positions), each new
// token then costs one incremental step; when the window moves, only the causal prefix the
// rule needs (condition + window tokens before the target) is recomputed. Rows overlap like a
// wavefront (row i+1 needs row i only up to about half a window right of its own column):
// a few rows, each with its own cache, advance together in one batched forward, and the B
// sequences (and their unconditional twins under guidance) with them.
//
// Every draw uses its own random stream, a function of (seed, sample index, grid position):
// sample k of a batch is the same as sample k alone, whatever the batch size, and guidance or
// K/V reuse do not shift the streams.
#ifndef VQGPT_SAMPLER_H
#define VQGPT_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "sampling/logits.h"
#include "stage2_transformer/gpt.h"

// Called after each sampled position (done of total), e.g. for progress output.
typedef void (*sampler_progress_fn)(void *ctx, int done, int total);

typedef struct {
  int B;                // samples, drawn together
  int n_cond;           // condition tokens in front of the codes (1, or a prompt's length)
  const int32_t *cond;  // (B, n_cond)
  // Classifier-free guidance: logits = uncond + cfg_scale * (cond - uncond), both passes in
  // one batch. NULL or cfg_scale == 1 samples without guidance (no second pass at all).
  const int32_t *uncond;  // (B, n_cond) or NULL
  float cfg_scale;
  int grid_h, grid_w;      // the grid to fill
  int window_h, window_w;  // the model's trained grid
  int n_allowed;           // codes are drawn from 0..n_allowed-1
  // Image completion: the first `keep` positions (raster order) come from init, (B, h*w).
  const int32_t *init;
  int keep;
  sampling_params sp;
  uint64_t seed;
  bool no_kv_reuse;  // recompute every position's prefix (tests, benchmarks)
  // Grid rows filled at once, each with its own cache (0: as many as can overlap; 1: one
  // position after another). Any value gives the same codes.
  int lanes;
} sampler_job;

// Fills in the defaults: no guidance, no completion, the default sampling parameters.
void vqgpt_sampler_job_default(sampler_job *job);
// The defaults for B plain sequences of n_tokens codes after one condition token each (cond:
// (B)), drawn from the whole vocabulary of m: one row, the window the sequence itself.
void vqgpt_sampler_job_sequence(sampler_job *job, const gpt *m, int B, const int32_t *cond,
                                int n_tokens);

// The window's extent in one dimension: the trained size, or the grid's where that is smaller
// (a grid narrower or lower than the window is sampled as the plain sampler does, its rows one
// after another in one sequence).
int vqgpt_sampler_window_extent(int grid, int trained);

// The target's index inside the window, in one dimension (grid size n, window size w <= n):
// i while i <= w/2 (the window is at the start), w - (n - i) when n - i < w/2 (at the end),
// else w/2 (centred) — the reference's rule, clamped so that the window stays inside the grid
// (that only matters for an odd w, where the centred window would reach one past the end).
int vqgpt_sampler_window_local(int i, int n, int w);

// Checks the job against the model; errors name the problem (grid too large for the block,
// keep beyond the grid, tokens out of range).
int vqgpt_sampler_check(const gpt *m, const sampler_job *job);

// out: (B, grid_h * grid_w) codes.
int vqgpt_sampler_run(const gpt *m, const sampler_job *job, int32_t *out,
                      sampler_progress_fn progress, void *ctx);

#endif
