#include "cli/models.h"

#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "weights/json.h"

static bool is_file(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static char *join(const char *dir, const char *rel, const char *name) {
  size_t n = strlen(dir) + strlen(rel) + strlen(name) + 3;
  char *s = malloc(n);
  if (s) snprintf(s, n, "%s/%s%s%s", dir, rel, *rel ? "/" : "", name);
  return s;
}

char *cli_shipped_model(const char *name) {
  const char *env = getenv("VQGPT_MODELS");
  if (env && *env) {
    char *p = join(env, "", name);
    if (p && is_file(p)) return p;
    free(p);
  }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    const char *dir = dirname(exe);
    static const char *rel[] = {"models", "../models", "../../models", "../share/vqgpt/models"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
      char *p = join(dir, rel[i], name);
      if (p && is_file(p)) return p;
      free(p);
    }
  }
  vqgpt_error(
      "shipped model %s not found ($VQGPT_MODELS, models/ beside or above the "
      "executable, <prefix>/share/vqgpt/models): give the model file",
      name);
  return NULL;
}

// The card's "vqgan" entry, parsed; NULL if the GPT has none.
static json_value *card_vqgan(const gpt *m) {
  if (!m->card.vqgan) return NULL;
  return vqgpt_json_parse(m->card.vqgan, strlen(m->card.vqgan));
}

char *cli_vqgan_for_gpt(const gpt *m, const char *gpt_path) {
  json_value *v = card_vqgan(m);
  const char *file = v ? vqgpt_json_get_string(v, "file") : NULL;
  if (!file || !*file || strchr(file, '/')) {
    vqgpt_json_free(v);
    vqgpt_file_error(gpt_path, false, "the GPT does not name its VQGAN: give --vqgan");
    return NULL;
  }
  char dir_buf[PATH_MAX];
  snprintf(dir_buf, sizeof dir_buf, "%s", gpt_path);
  char *p = join(dirname(dir_buf), "", file);
  if (!p || !is_file(p)) {
    free(p);
    p = cli_shipped_model(file);
  }
  if (!p)
    vqgpt_file_error(gpt_path, false, "its VQGAN %s is neither beside it nor shipped: give --vqgan",
                     file);
  vqgpt_json_free(v);
  return p;
}

int cli_check_vqgan(const gpt *m, const char *gpt_path, const vqgan *vq, const char *vqgan_path) {
  int n_embed = vqgpt_vqgan_get_config(vq)->n_embed;
  if (m->cfg.n_codes < n_embed && m->cfg.vocab_size < n_embed)
    return vqgpt_error(
        "%s: the GPT's vocabulary (%d tokens) does not cover the codebook of %s "
        "(%d codes)",
        gpt_path, m->cfg.vocab_size, vqgan_path, n_embed);
  json_value *v = card_vqgan(m);
  if (!v) return 0;
  const char *fp = vqgpt_json_get_string(v, "fingerprint");
  const char *file = vqgpt_json_get_string(v, "file");
  char have[17];
  snprintf(have, sizeof have, "%016" PRIx64, vqgpt_vqgan_fingerprint(vq));
  int rc = 0;
  if (fp && strcmp(fp, have))
    rc = vqgpt_error("%s was trained with the VQGAN %s (codebook %s), not with %s (codebook %s)",
                     gpt_path, file ? file : "?", fp, vqgan_path, have);
  vqgpt_json_free(v);
  return rc;
}

vqgpt_tokenizer *cli_gpt_tokenizer(const gpt *m, const char *gpt_path) {
  if (!m->card.tokenizer) {
    vqgpt_error("%s: text model without a tokenizer", gpt_path);
    return NULL;
  }
  return vqgpt_tokenizer_load_bytes(m->card.tokenizer, m->card.tokenizer_bytes, gpt_path);
}
