// Benchmarks behind `vqgpt bench <what>`; each prints its figures to stdout.
#ifndef VQGPT_BENCH_H
#define VQGPT_BENCH_H

int bench_vqgan(int argc, char **argv);

#endif
