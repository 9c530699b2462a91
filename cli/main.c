// vqgpt: one subcommand per user task (DESIGN.md, "Command-line contract").
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "core/blas.h"

typedef struct {
  const char *name;
  vqgpt_command_fn run;
  const char *summary;
} command;

static const command commands[] = {
    {"encode", cmd_encode, "image -> codebook indices (.npy)"},
    {"decode", cmd_decode, "codebook indices (.npy) -> image"},
    {"reconstruct", cmd_reconstruct, "image -> codes -> image, with PSNR"},
    {"train-vqgan", cmd_train_vqgan, "train a VQGAN on an image folder"},
    {"sample", cmd_sample, "draw code grids from a GPT; decode them with a VQGAN"},
    {"train-tokenizer", cmd_train_tokenizer, "train a SentencePiece tokenizer on captions"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"train-gpt", cmd_train_gpt, "train the GPT on the VQGAN codes of an image folder"},
    {"export", cmd_export, "a checkpoint to a plain model file (optionally f16)"},
    {"bench", cmd_bench, "benchmarks (vqgan, gpt)"},
    {"version", NULL, "print the version and the BLAS core in use"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: vqgpt <command> [options]   (vqgpt <command> --help for details)\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
  vqgpt_blas_setup(argv);
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 1 : 0;
  }
  if (!strcmp(argv[1], "version")) {
    printf("vqgpt 0.1.0 (OpenBLAS core: %s)\n", vqgpt_blas_corename());
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (commands[i].run && !strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "vqgpt: unknown command '%s' (see vqgpt --help)\n", argv[1]);
  return 1;
}
