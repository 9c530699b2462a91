// Benchmarks behind `vqgpt bench <what>`; each prints its figures to stdout.
#ifndef VQGPT_BENCH_H
#define VQGPT_BENCH_H

#include "stage1_vqgan/vqgan.h"
#include "stage2_transformer/gpt.h"

int bench_vqgan(int argc, char **argv);
int bench_vqgan_train(int argc, char **argv);
int bench_gpt(int argc, char **argv);
int bench_window(int argc, char **argv);

// The released f16 VQGAN architecture (ch_mult [1,1,2,2,4], 2 res blocks, attention at 16)
// with the given base channels and codebook size.
vqgan_config bench_f16_config(int ch, int n_embed);

// Measured machine limits, printed as one line "machine: ..." before a benchmark's figures.
typedef struct {
  double sgemm_gflops;  // 1024^3 sgemm, all threads
  double read_gbs;      // streaming read of 256 MB, all threads
} bench_limits;
int bench_machine_limits(bench_limits *out);

// The model to sample from with weights stored as `dtype` ("f32", "f16" or "bf16"): m itself
// for f32, else m rounded to that format, saved to a temporary file and loaded back with
// vqgpt_gpt_load_for_sampling (half-precision weights in memory). NULL (and an error) on failure.
gpt *bench_gpt_for_sampling(gpt *m, const char *dtype);
// Megabytes the model's parameters occupy in memory (float32 and half-precision blocks).
double bench_gpt_weight_mb(const gpt *m);

// The shortest of `reps` timed calls of run(ctx) in seconds; -1 if a call fails.
double bench_best_of(int reps, int (*run)(void *), void *ctx);

#endif
