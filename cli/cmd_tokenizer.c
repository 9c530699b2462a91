// Text tokenizer commands: train-tokenizer (captions -> SentencePiece model) and tokenize
// (text -> ids, to see what a prompt becomes).
#include <stdio.h>
#include <stdlib.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

int cmd_train_tokenizer(int argc, char **argv) {
  const char *text = NULL, *out = NULL;
  long vocab = 0;
  cli_opt opts[] = {
      {"text", OPT_STRING, &text, "captions: UTF-8 text, one caption per line"},
      {"vocab", OPT_INT, &vocab, "number of pieces (ids), 16..65536; pad 0, unk 1, bos 2, eos 3"},
      {"out", OPT_STRING, &out, "output SentencePiece model (.model)"},
  };
  cli_status st =
      cli_parse("train-tokenizer",
                "Train a SentencePiece BPE tokenizer on captions (case-insensitive; the same\n"
                "file always gives the same model).",
                argc, argv, opts, sizeof opts / sizeof opts[0]);
  if (st != CLI_OK) return st == CLI_HELP ? 0 : 1;
  if (!cli_require("train-tokenizer", "text", text) || !cli_require("train-tokenizer", "out", out))
    return 1;
  if (!vocab) return cli_fail("train-tokenizer", "missing required option --vocab (see --help)");
  if (vocab < TOKENIZER_MIN_VOCAB || vocab > TOKENIZER_MAX_VOCAB)
    return cli_fail("train-tokenizer", "--vocab %ld is outside %d..%d", vocab, TOKENIZER_MIN_VOCAB,
                    TOKENIZER_MAX_VOCAB);
  if (vqgpt_tokenizer_train(text, (int)vocab, out))
    return cli_fail("train-tokenizer", "%s", vqgpt_last_error());
  fprintf(stderr, "trained a %ld-piece tokenizer on %s -> %s\n", vocab, text, out);
  return 0;
}

int cmd_tokenize(int argc, char **argv) {
  const char *model = NULL, *text = NULL;
  cli_opt opts[] = {
      {"tokenizer", OPT_STRING, &model, "SentencePiece model (.model)"},
      {"text", OPT_STRING, &text, "the text to tokenize"},
  };
  cli_status st =
      cli_parse("tokenize", "Print the token ids of a text on stdout, separated by spaces.", argc,
                argv, opts, sizeof opts / sizeof opts[0]);
  if (st != CLI_OK) return st == CLI_HELP ? 0 : 1;
  if (!cli_require("tokenize", "tokenizer", model) || !cli_require("tokenize", "text", text))
    return 1;
  vqgpt_tokenizer *tok = vqgpt_tokenizer_load_file(model);
  if (!tok) return cli_fail("tokenize", "%s", vqgpt_last_error());
  // A first call with no room reports how many ids the text needs.
  int need = 0, n = 0;
  if (vqgpt_tokenizer_encode(tok, text, NULL, 0, &need) && need == 0) {
    vqgpt_tokenizer_free(tok);
    return cli_fail("tokenize", "%s", vqgpt_last_error());
  }
  int32_t *ids = malloc((size_t)need * sizeof *ids);
  int rc = ids ? vqgpt_tokenizer_encode(tok, text, ids, need, &n) : vqgpt_error("out of memory");
  for (int i = 0; !rc && i < n; i++) printf(i ? " %d" : "%d", (int)ids[i]);
  if (!rc) printf("\n");
  free(ids);
  vqgpt_tokenizer_free(tok);
  return rc ? cli_fail("tokenize", "%s", vqgpt_last_error()) : 0;
}
