// `vqgpt bench <what>`: dispatches to the benchmarks in bench/.
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"
#include "cli/args.h"
#include "cli/commands.h"

int cmd_bench(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    printf("usage: vqgpt bench <vqgan|gpt> [options]   (vqgpt bench <what> --help)\n");
    return argc < 2 ? 1 : 0;
  }
  if (!strcmp(argv[1], "vqgan")) return bench_vqgan(argc - 1, argv + 1);
  if (!strcmp(argv[1], "gpt")) return bench_gpt(argc - 1, argv + 1);
  return cli_fail("bench", "unknown benchmark '%s' (vqgan or gpt)", argv[1]);
}
