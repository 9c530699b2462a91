// `vqgpt export`: a training checkpoint (or any model file) to a plain model file, without
// optimizer state, optionally in half precision.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "stage1_vqgan/vqgan.h"
#include "stage2_transformer/gpt.h"
#include "weights/json.h"
#include "weights/safetensors.h"

#define CMD "export"

static int export_vqgan(const char *in, const char *out, st_dtype storage) {
  vqgan *m = vqgpt_vqgan_load(in);
  int rc = m ? vqgpt_vqgan_save_as(m, out, storage) : -1;
  vqgpt_vqgan_free(m);
  return rc;
}

// The recommended sampling settings a GPT carries: a JSON object of known keys and sane values.
static int check_sampling(const char *json) {
  json_value *v = vqgpt_json_parse(json, strlen(json));
  if (!v) return vqgpt_error("--sampling is not valid JSON: %s", vqgpt_last_error());
  int rc = v->type == JSON_OBJECT ? 0 : vqgpt_error("--sampling must be a JSON object");
  static const struct {
    const char *key;
    double lo, hi;
  } keys[] = {
      {"cfg", -100, 100}, {"top_k", 0, 1 << 20}, {"top_p", 1e-9, 1}, {"temperature", 1e-9, 1e4}};
  for (size_t i = 0; !rc && i < v->count; i++) {
    size_t k = 0;
    while (k < sizeof keys / sizeof keys[0] && strcmp(keys[k].key, v->keys[i])) k++;
    double x = v->items[i].number;
    if (k == sizeof keys / sizeof keys[0])
      rc = vqgpt_error("--sampling: unknown key '%s' (cfg, top_k, top_p, temperature)", v->keys[i]);
    else if (v->items[i].type != JSON_NUMBER || !(x >= keys[k].lo && x <= keys[k].hi))
      rc = vqgpt_error("--sampling: '%s' must be a number in [%g, %g]", v->keys[i], keys[k].lo,
                       keys[k].hi);
  }
  vqgpt_json_free(v);
  return rc;
}

static int export_gpt(const char *in, const char *out, st_dtype storage, const char *sampling) {
  gpt *m = vqgpt_gpt_load(in);
  if (!m) return -1;
  int rc = 0;
  if (sampling) {
    free(m->card.sampling);
    m->card.sampling = strdup(sampling);
    if (!m->card.sampling) rc = vqgpt_error("out of memory");
  }
  if (!rc) rc = vqgpt_gpt_save_as(m, out, storage);
  vqgpt_gpt_free(m);
  return rc;
}

int cmd_export(int argc, char **argv) {
  const char *in = NULL, *out = NULL, *dtype = "f32", *sampling = NULL;
  cli_opt opts[] = {
      {"in", OPT_STRING, &in, "checkpoint or model (.safetensors): taming-vqgan or taming-gpt"},
      {"out", OPT_STRING, &out, "plain model file to write"},
      {"dtype", OPT_STRING, &dtype, "f32 | f16 | bf16: storage of the parameters"},
      {"sampling", OPT_STRING, &sampling,
       "GPT: recommended settings `sample` uses when no flag is given, e.g. '{\"cfg\": 3, "
       "\"top_k\": 64}'"},
  };
  cli_status st =
      cli_parse(CMD, "Write a model without its training state (optimizer, discriminator).", argc,
                argv, opts, sizeof opts / sizeof opts[0]);
  if (st != CLI_OK) return st == CLI_HELP ? 0 : 1;
  if (!cli_require(CMD, "in", in) || !cli_require(CMD, "out", out)) return 1;
  st_dtype storage = !strcmp(dtype, "f32")    ? ST_F32
                     : !strcmp(dtype, "f16")  ? ST_F16
                     : !strcmp(dtype, "bf16") ? ST_BF16
                                              : ST_BOOL;
  if (storage == ST_BOOL) return cli_fail(CMD, "--dtype must be f32, f16 or bf16, not '%s'", dtype);
  if (sampling && check_sampling(sampling)) return cli_fail(CMD, "%s", vqgpt_last_error());
  st_file f;
  if (vqgpt_st_open(&f, in)) return cli_fail(CMD, "%s", vqgpt_last_error());
  const char *fmt = vqgpt_st_meta(&f, "format");
  char format[64] = "";
  if (fmt) snprintf(format, sizeof format, "%s", fmt);
  vqgpt_st_close(&f);
  int rc;
  if (!strcmp(format, "taming-vqgan"))
    rc = sampling ? vqgpt_error("--sampling is for GPT models; %s is a VQGAN", in)
                  : export_vqgan(in, out, storage);
  else if (!strcmp(format, "taming-gpt"))
    rc = export_gpt(in, out, storage, sampling);
  else
    rc = vqgpt_error("%s: format '%s' is neither taming-vqgan nor taming-gpt", in, format);
  if (rc) return cli_fail(CMD, "%s", vqgpt_last_error());
  fprintf(stderr, "%s: %s -> %s (%s)\n", format, in, out, dtype);
  return 0;
}
