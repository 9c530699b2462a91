// `vqgpt export`: a training checkpoint (or any model file) to a plain model file, without
// optimizer state, optionally in half precision.
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "stage1_vqgan/vqgan.h"
#include "stage2_transformer/gpt.h"
#include "weights/safetensors.h"

#define CMD "export"

static int export_vqgan(const char *in, const char *out, st_dtype storage) {
  vqgan *m = vqgan_load(in);
  int rc = m ? vqgan_save_as(m, out, storage) : -1;
  vqgan_free(m);
  return rc;
}

static int export_gpt(const char *in, const char *out, st_dtype storage) {
  gpt *m = gpt_load(in);
  int rc = m ? gpt_save_as(m, out, storage) : -1;
  gpt_free(m);
  return rc;
}

int cmd_export(int argc, char **argv) {
  const char *in = NULL, *out = NULL, *dtype = "f32";
  cli_opt opts[] = {
      {"in", OPT_STRING, &in, "checkpoint or model (.safetensors): taming-vqgan or taming-gpt"},
      {"out", OPT_STRING, &out, "plain model file to write"},
      {"dtype", OPT_STRING, &dtype, "f32 | f16 | bf16: storage of the parameters"},
  };
  cli_status st = cli_parse(CMD, "Write a model without its training state (optimizer, discriminator).",
                            argc, argv, opts, sizeof opts / sizeof opts[0]);
  if (st != CLI_OK) return st == CLI_HELP ? 0 : 1;
  if (!cli_require(CMD, "in", in) || !cli_require(CMD, "out", out)) return 1;
  st_dtype storage = !strcmp(dtype, "f32") ? ST_F32 : !strcmp(dtype, "f16") ? ST_F16 : !strcmp(dtype, "bf16") ? ST_BF16 : ST_BOOL;
  if (storage == ST_BOOL) return cli_fail(CMD, "--dtype must be f32, f16 or bf16, not '%s'", dtype);
  st_file f;
  if (st_open(&f, in)) return cli_fail(CMD, "%s", vqgpt_last_error());
  const char *fmt = st_meta(&f, "format");
  char format[64] = "";
  if (fmt) snprintf(format, sizeof format, "%s", fmt);
  st_close(&f);
  int rc;
  if (!strcmp(format, "taming-vqgan"))
    rc = export_vqgan(in, out, storage);
  else if (!strcmp(format, "taming-gpt"))
    rc = export_gpt(in, out, storage);
  else
    rc = vqgpt_error("%s: format '%s' is neither taming-vqgan nor taming-gpt", in, format);
  if (rc) return cli_fail(CMD, "%s", vqgpt_last_error());
  fprintf(stderr, "%s: %s -> %s (%s)\n", format, in, out, dtype);
  return 0;
}
