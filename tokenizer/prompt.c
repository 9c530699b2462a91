#include "tokenizer/prompt.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

int vqgpt_prompt_encode(const gpt_config *cfg, const vqgpt_tokenizer *tok, const char *text,
                        bool truncate, int32_t *out, bool *truncated) {
  if (cfg->cond != GPT_COND_TEXT) return vqgpt_error("the GPT is not text-conditional");
  if (vqgpt_tokenizer_vocab_size(tok) != cfg->text_vocab)
    return vqgpt_error("the tokenizer has %d pieces but the GPT expects %d",
                       vqgpt_tokenizer_vocab_size(tok), cfg->text_vocab);
  int L = cfg->text_len, n = 0;
  if (truncated) *truncated = false;
  // Ask for one id more than fits, so an over-long text is told apart from one that fits.
  int32_t *ids = malloc((size_t)(L + 1) * sizeof(int32_t));
  if (!ids) return vqgpt_error("out of memory");
  int rc = vqgpt_tokenizer_encode(tok, text, ids, L + 1, &n);
  if (rc && n > L + 1) {  // longer still: n is the count needed
    if (!truncate) {
      free(ids);
      return vqgpt_error("prompt needs %d tokens, the model takes %d", n, L);
    }
    int32_t *all = malloc((size_t)n * sizeof(int32_t));
    rc = all ? vqgpt_tokenizer_encode(tok, text, all, n, &n) : vqgpt_error("out of memory");
    if (!rc) memcpy(ids, all, (size_t)(L + 1) * sizeof(int32_t));
    free(all);
  }
  if (rc) {
    free(ids);
    return -1;
  }
  if (n > L) {
    if (!truncate) {
      free(ids);
      return vqgpt_error("prompt needs %d tokens, the model takes %d", n, L);
    }
    if (truncated) *truncated = true;
    n = L;
  }
  for (int k = 0; k < L; k++) out[k] = k < n ? cfg->n_codes + ids[k] : vqgpt_gpt_text_pad(cfg);
  free(ids);
  return 0;
}

void vqgpt_prompt_null(const gpt_config *cfg, int32_t *out) {
  for (int k = 0; k < cfg->text_len; k++) out[k] = vqgpt_gpt_text_pad(cfg);
}

int vqgpt_caption_read(const char *image_path, char **text) {
  *text = NULL;
  size_t n = strlen(image_path);
  const char *dot = strrchr(image_path, '.'), *slash = strrchr(image_path, '/');
  size_t stem = dot && (!slash || dot > slash) ? (size_t)(dot - image_path) : n;
  char *path = malloc(stem + 5);
  if (!path) return vqgpt_error("out of memory");
  memcpy(path, image_path, stem);
  memcpy(path + stem, ".txt", 5);
  int rc = -1;
  // Without blocking, and only a regular file: a FIFO or device named like a caption must not
  // hang or feed a run.
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  struct stat sb;
  if (fd < 0) {
    vqgpt_file_error(path, false, "no caption for %s", image_path);
    goto done;
  }
  if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
    vqgpt_file_error(path, false, "caption is not a regular file");
    goto done;
  }
  if (sb.st_size > TOKENIZER_MAX_TEXT_BYTES) {
    vqgpt_file_error(path, false, "caption of %lld bytes is over the %d-byte limit",
                     (long long)sb.st_size, TOKENIZER_MAX_TEXT_BYTES);
    goto done;
  }
  char *s = malloc((size_t)sb.st_size + 1);
  if (!s) {
    vqgpt_error("out of memory");
    goto done;
  }
  ssize_t got = read(fd, s, (size_t)sb.st_size);
  if (got != (ssize_t)sb.st_size) {
    free(s);
    vqgpt_file_error(path, false, "cannot read the caption");
    goto done;
  }
  size_t len = (size_t)got;
  while (len > 0 &&
         (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' || s[len - 1] == '\t'))
    len--;
  s[len] = '\0';
  if (memchr(s, '\0', len) || strchr(s, '\n')) {
    free(s);
    vqgpt_file_error(path, false, "caption must be one line of text");
    goto done;
  }
  if (vqgpt_tokenizer_check_text(s)) {
    char why[256];
    snprintf(why, sizeof why, "%s", vqgpt_last_error());
    free(s);
    vqgpt_file_error(path, false, "caption: %s", why);
    goto done;
  }
  *text = s;
  rc = 0;
done:
  if (fd >= 0) close(fd);
  free(path);
  return rc;
}
