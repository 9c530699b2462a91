// vqgpt: one subcommand per user task (DESIGN.md, "Command-line contract").
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/blas.h"
#include "core/dist.h"
#include "core/error.h"

typedef struct {
  const char *name;
  vqgpt_command_fn run;
  const char *summary;
  bool data_parallel;  // runs as one job under mpirun -np N (the others would just repeat)
} command;

static const command commands[] = {
    {"encode", cmd_encode, "image -> codebook indices (.npy)"},
    {"decode", cmd_decode, "codebook indices (.npy) -> image"},
    {"reconstruct", cmd_reconstruct, "image -> codes -> image, with PSNR"},
    {"train-vqgan", cmd_train_vqgan, "train a VQGAN on an image folder", true},
    {"sample", cmd_sample, "draw code grids from a GPT; decode them with a VQGAN"},
    {"train-tokenizer", cmd_train_tokenizer, "train a SentencePiece tokenizer on captions"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"train-gpt", cmd_train_gpt, "train the GPT on the VQGAN codes of an image folder", true},
    {"export", cmd_export, "a checkpoint to a plain model file (optionally f16)"},
    {"info", cmd_info, "what a model file is (kind, shape, storage, settings); checks it loads"},
    {"bench", cmd_bench, "benchmarks (vqgan, gpt)"},
    {"version", NULL, "print the version and the BLAS core in use"},
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: vqgpt <command> [options]   (vqgpt <command> --help for details)\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].summary);
}

static int run(const command *c, int argc, char **argv) {
  if (vqgpt_dist_size() > 1 && !c->data_parallel) {
    if (vqgpt_dist_rank() == 0)
      fprintf(stderr,
              "vqgpt %s: does not run data-parallel (only train-vqgan and train-gpt do): "
              "run it without mpirun\n",
              c->name);
    return 1;
  }
  if (vqgpt_dist_rank() > 0) cli_quiet_rank(vqgpt_dist_rank());
  return c->run(argc, argv);
}

int main(int argc, char **argv) {
  vqgpt_blas_setup(argv);  // may re-execute the program, so before joining an MPI job
  if (vqgpt_dist_init(&argc, &argv)) {
    fprintf(stderr, "vqgpt: %s\n", vqgpt_last_error());
    return 1;
  }
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    vqgpt_dist_finalize(argc < 2);
    return argc < 2 ? 1 : 0;
  }
  if (!strcmp(argv[1], "version")) {
    printf("vqgpt 0.1.0 (OpenBLAS core: %s; MPI: %s)\n", vqgpt_blas_corename(),
           vqgpt_dist_available() ? "yes" : "no");
    vqgpt_dist_finalize(0);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (commands[i].run && !strcmp(argv[1], commands[i].name)) {
      int status = run(&commands[i], argc - 1, argv + 1);
      vqgpt_dist_finalize(status);
      return status;
    }
  fprintf(stderr, "vqgpt: unknown command '%s' (see vqgpt --help)\n", argv[1]);
  vqgpt_dist_finalize(1);
  return 1;
}
