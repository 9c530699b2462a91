// Benchmarks behind `vqgpt bench <what>`; each prints its figures to stdout.
#ifndef VQGPT_BENCH_H
#define VQGPT_BENCH_H

#include "stage1_vqgan/vqgan.h"

int bench_vqgan(int argc, char **argv);
int bench_vqgan_train(int argc, char **argv);
int bench_gpt(int argc, char **argv);
int bench_window(int argc, char **argv);

// The released f16 VQGAN architecture (ch_mult [1,1,2,2,4], 2 res blocks, attention at 16)
// with the given base channels and codebook size.
vqgan_config bench_f16_config(int ch, int n_embed);

// The shortest of `reps` timed calls of run(ctx) in seconds; -1 if a call fails.
double bench_best_of(int reps, int (*run)(void *), void *ctx);

#endif
