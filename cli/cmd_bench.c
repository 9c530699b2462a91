// `vqgpt bench <what>`: dispatches to the benchmarks in bench/.
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"
#include "cli/args.h"
#include "cli/commands.h"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} bench_entry;

static const bench_entry benches[] = {
    {"vqgan", bench_vqgan, "f16 VQGAN encode 256x256 and decode 16x16 (--grid HxW: peak memory)"},
    {"vqgan-train", bench_vqgan_train,
     "one f16 VQGAN G+D training step, batch 4 at 128x128 (--lpips W)"},
    {"gpt", bench_gpt, "55M-parameter GPT: sampling 256 tokens at batch 1 and 8, a training step"},
    {"window", bench_window, "55M-parameter GPT: sliding-window sampling of a 32x64 grid"},
};

int cmd_bench(int argc, char **argv) {
  size_t n = sizeof benches / sizeof benches[0];
  if (argc >= 2)
    for (size_t i = 0; i < n; i++)
      if (!strcmp(argv[1], benches[i].name)) return benches[i].run(argc - 1, argv + 1);
  int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
  FILE *f = help ? stdout : stderr;
  fprintf(f, "usage: vqgpt bench <what> [options]\n\nbenchmarks:\n");
  for (size_t i = 0; i < n; i++) fprintf(f, "  %-12s %s\n", benches[i].name, benches[i].summary);
  return help ? 0 : 1;
}
