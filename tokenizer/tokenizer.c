// The tokenizer API: input checks, file reading and writing in C; SentencePiece itself is
// reached only through sentencepiece_shim.h.
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "tokenizer/model_check.h"
#include "tokenizer/sentencepiece_shim.h"

// Caption files larger than this are a corpus, not captions: train on a sample.
#define TOKENIZER_MAX_CAPTION_FILE_BYTES ((size_t)1 << 30)

struct vqgpt_tokenizer {
  tokenizer_spm *spm;
  tokenizer_spm_info info;
  unsigned char *bytes;  // the serialized model, as loaded
  size_t n_bytes;
};

// ---- text checks -----------------------------------------------------------------------

// Length of the UTF-8 sequence at s (at most n bytes) and its code point, or 0 if it is not
// well formed (truncated, overlong, a surrogate or past U+10FFFF).
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
  static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  size_t len;
  if (s[0] < 0x80)
    len = 1;
  else if (s[0] >= 0xc2 && s[0] <= 0xdf)
    len = 2;
  else if (s[0] >= 0xe0 && s[0] <= 0xef)
    len = 3;
  else if (s[0] >= 0xf0 && s[0] <= 0xf4)
    len = 4;
  else
    return 0;
  if (len > n) return 0;
  uint32_t c = len == 1 ? s[0] : s[0] & (0x7f >> len);
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    c = c << 6 | (s[i] & 0x3f);
  }
  if (c < min_cp[len] || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff) return 0;
  *cp = c;
  return len;
}

// C0 and C1 controls and DEL; tab, newline and carriage return are whitespace here.
static bool is_control(uint32_t c) {
  return (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || (c >= 0x7f && c <= 0x9f);
}

static bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

typedef enum { TEXT_OK, TEXT_BAD_UTF8, TEXT_CONTROL } text_problem;

// The first problem in s[0, n): *at is its byte offset, *cp the control character's code point.
static text_problem find_text_problem(const unsigned char *s, size_t n, size_t *at, uint32_t *cp) {
  for (size_t i = 0; i < n;) {
    size_t len = utf8_decode(s + i, n - i, cp);
    *at = i;
    if (!len) return TEXT_BAD_UTF8;
    if (is_control(*cp)) return TEXT_CONTROL;
    i += len;
  }
  return TEXT_OK;
}

static bool only_spaces(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!is_space(s[i])) return false;
  return true;
}

int vqgpt_tokenizer_check_text(const char *text) {
  if (!text) return vqgpt_error("prompt is missing");
  size_t n = strlen(text), at;
  uint32_t cp;
  if (n > TOKENIZER_MAX_TEXT_BYTES)
    return vqgpt_error("prompt has %zu bytes, at most %d are allowed", n, TOKENIZER_MAX_TEXT_BYTES);
  if (n == 0) return vqgpt_error("prompt is empty");
  switch (find_text_problem((const unsigned char *)text, n, &at, &cp)) {
    case TEXT_BAD_UTF8:
      return vqgpt_error("prompt is not valid UTF-8 (byte %zu)", at);
    case TEXT_CONTROL:
      return vqgpt_error("prompt contains control character U+%04X (byte %zu)", (unsigned)cp, at);
    case TEXT_OK:
      break;
  }
  if (only_spaces((const unsigned char *)text, n)) return vqgpt_error("prompt is only whitespace");
  return 0;
}

// ---- files -------------------------------------------------------------------------------

// Reads a whole regular file of 1 to `limit` bytes into a malloc'd buffer with a NUL after the
// data. `what` names the expected content in errors ("a tokenizer model").
static int read_file(const char *path, size_t limit, const char *what, unsigned char **data,
                     size_t *n) {
  *data = NULL;
  *n = 0;
  FILE *fp = fopen(path, "rb");
  if (!fp) return vqgpt_file_error(path, false, "cannot open: %s", strerror(errno));
  struct stat st;
  int rc = 0;
  if (fstat(fileno(fp), &st) != 0)
    rc = vqgpt_file_error(path, false, "cannot stat: %s", strerror(errno));
  else if (!S_ISREG(st.st_mode))
    rc = vqgpt_file_error(path, false, "not a regular file");
  else if (st.st_size == 0)
    rc = vqgpt_file_error(path, false, "file is empty (expected %s)", what);
  else if ((unsigned long long)st.st_size > limit)
    rc = vqgpt_file_error(path, false, "%lld bytes, too large for %s (at most %zu)",
                          (long long)st.st_size, what, limit);
  if (!rc) {
    size_t size = (size_t)st.st_size;
    *data = malloc(size + 1);
    if (!*data)
      rc = vqgpt_file_error(path, false, "out of memory reading %zu bytes", size);
    else if (fread(*data, 1, size, fp) != size || getc(fp) != EOF)
      rc = vqgpt_file_error(path, false, "read error or file changed while reading");
    if (!rc) {
      (*data)[size] = '\0';
      *n = size;
    } else {
      free(*data);
      *data = NULL;
    }
  }
  fclose(fp);
  return rc;
}

// ---- loading ---------------------------------------------------------------------------

vqgpt_tokenizer *vqgpt_tokenizer_load_bytes(const void *data, size_t n, const char *source) {
  if (!data || n == 0) {
    vqgpt_file_error(source, false, "empty tokenizer model");
    return NULL;
  }
  const char *problem = vqgpt_tokenizer_model_problem(data, n);
  if (problem) {
    vqgpt_file_error(source, false, "not a SentencePiece model (%s)", problem);
    return NULL;
  }
  vqgpt_tokenizer *tok = calloc(1, sizeof *tok);
  if (!tok || !(tok->bytes = malloc(n))) {
    free(tok);
    vqgpt_file_error(source, false, "out of memory");
    return NULL;
  }
  memcpy(tok->bytes, data, n);
  tok->n_bytes = n;
  tok->spm = vqgpt_tokenizer_spm_load(data, n, source, &tok->info);
  if (!tok->spm) {
    vqgpt_tokenizer_free(tok);
    return NULL;
  }
  return tok;
}

vqgpt_tokenizer *vqgpt_tokenizer_load_file(const char *path) {
  unsigned char *data;
  size_t n;
  if (read_file(path, TOKENIZER_MAX_MODEL_BYTES, "a tokenizer model", &data, &n)) return NULL;
  vqgpt_tokenizer *tok = vqgpt_tokenizer_load_bytes(data, n, path);
  free(data);
  return tok;
}

void vqgpt_tokenizer_free(vqgpt_tokenizer *tok) {
  if (!tok) return;
  vqgpt_tokenizer_spm_free(tok->spm);
  free(tok->bytes);
  free(tok);
}

int vqgpt_tokenizer_vocab_size(const vqgpt_tokenizer *tok) { return tok->info.vocab_size; }
int vqgpt_tokenizer_pad_id(const vqgpt_tokenizer *tok) { return tok->info.pad_id; }
int vqgpt_tokenizer_unk_id(const vqgpt_tokenizer *tok) { return tok->info.unk_id; }
int vqgpt_tokenizer_bos_id(const vqgpt_tokenizer *tok) { return tok->info.bos_id; }
int vqgpt_tokenizer_eos_id(const vqgpt_tokenizer *tok) { return tok->info.eos_id; }

const void *vqgpt_tokenizer_model_bytes(const vqgpt_tokenizer *tok, size_t *n) {
  *n = tok->n_bytes;
  return tok->bytes;
}

// ---- encode / decode ---------------------------------------------------------------------

int vqgpt_tokenizer_encode(const vqgpt_tokenizer *tok, const char *text, int32_t *ids, int max_ids,
                           int *n_ids) {
  *n_ids = 0;
  if (max_ids < 0) return vqgpt_error("vqgpt_tokenizer_encode: negative max_ids %d", max_ids);
  if (vqgpt_tokenizer_check_text(text)) return -1;
  size_t n = strlen(text);
  char *clean = malloc(n + 1);
  if (!clean) return vqgpt_error("out of memory");
  for (size_t i = 0; i <= n; i++) clean[i] = is_space((unsigned char)text[i]) ? ' ' : text[i];
  int count = 0;
  int rc = vqgpt_tokenizer_spm_encode(tok->spm, clean, n, ids, max_ids, &count);
  free(clean);
  if (rc) return -1;
  if (count == 0) return vqgpt_error("prompt gives no tokens");
  if (count > max_ids) {
    *n_ids = count;
    return vqgpt_error("prompt needs %d tokens, the model takes %d", count, max_ids);
  }
  *n_ids = count;
  return 0;
}

char *vqgpt_tokenizer_decode(const vqgpt_tokenizer *tok, const int32_t *ids, int n) {
  if (n < 0) {
    vqgpt_error("vqgpt_tokenizer_decode: negative count %d", n);
    return NULL;
  }
  for (int i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= tok->info.vocab_size) {
      vqgpt_error("token id %d at position %d is outside the vocabulary (0..%d)", (int)ids[i], i,
                  tok->info.vocab_size - 1);
      return NULL;
    }
  return vqgpt_tokenizer_spm_decode(tok->spm, ids, n);
}

// ---- training ----------------------------------------------------------------------------

// Splits the caption file's text (NUL-terminated, modified in place) into checked lines:
// *lines points into text, blank lines left out, tabs and CRs turned into spaces.
static int caption_lines(const char *path, char *text, size_t size, char ***lines,
                         size_t *n_lines) {
  size_t cap = 1;
  for (size_t i = 0; i < size; i++) cap += text[i] == '\n';
  *lines = malloc(cap * sizeof **lines);
  *n_lines = 0;
  if (!*lines) return vqgpt_file_error(path, false, "out of memory");
  char *line = text, *end = text + size;
  for (size_t number = 1; line < end; number++) {
    char *nl = memchr(line, '\n', (size_t)(end - line));
    size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);
    line[len] = '\0';
    size_t at;
    uint32_t cp;
    text_problem p = find_text_problem((const unsigned char *)line, len, &at, &cp);
    int rc = 0;
    if (len > TOKENIZER_MAX_TEXT_BYTES)
      rc = vqgpt_file_error(path, false, "line %zu has %zu bytes, at most %d are allowed", number,
                            len, TOKENIZER_MAX_TEXT_BYTES);
    else if (p == TEXT_BAD_UTF8)
      rc = vqgpt_file_error(path, false, "line %zu is not valid UTF-8 (byte %zu)", number, at);
    else if (p == TEXT_CONTROL)
      rc = vqgpt_file_error(path, false, "line %zu contains control character U+%04X", number,
                            (unsigned)cp);
    if (rc) {
      free(*lines);
      *lines = NULL;
      return rc;
    }
    for (size_t i = 0; i < len; i++)
      if (is_space((unsigned char)line[i])) line[i] = ' ';
    if (!only_spaces((const unsigned char *)line, len)) (*lines)[(*n_lines)++] = line;
    line += len + 1;
  }
  if (*n_lines == 0) {
    free(*lines);
    *lines = NULL;
    return vqgpt_file_error(path, false, "no captions (only blank lines)");
  }
  return 0;
}

int vqgpt_tokenizer_train(const char *text_path, int vocab_size, const char *out_model_path) {
  if (vocab_size < TOKENIZER_MIN_VOCAB || vocab_size > TOKENIZER_MAX_VOCAB)
    return vqgpt_error("vocabulary size %d is outside %d..%d", vocab_size, TOKENIZER_MIN_VOCAB,
                       TOKENIZER_MAX_VOCAB);
  struct stat in, out_st;
  if (stat(text_path, &in) == 0 && stat(out_model_path, &out_st) == 0 &&
      in.st_dev == out_st.st_dev && in.st_ino == out_st.st_ino)
    return vqgpt_file_error(out_model_path, false,
                            "is the caption file: the model would replace it");
  unsigned char *text;
  size_t size;
  if (read_file(text_path, TOKENIZER_MAX_CAPTION_FILE_BYTES, "a caption file", &text, &size))
    return -1;
  char **lines = NULL;
  size_t n_lines = 0;
  int rc = caption_lines(text_path, (char *)text, size, &lines, &n_lines);
  // Opened before training, so that an unwritable output fails before the work.
  atomic_file out;
  if (!rc) rc = vqgpt_atomic_file_open(&out, out_model_path);
  void *model = NULL;
  size_t n_model = 0;
  if (!rc) {
    rc = vqgpt_tokenizer_spm_train((const char *const *)lines, n_lines, vocab_size,
                                   TOKENIZER_MAX_TEXT_BYTES, text_path, &model, &n_model);
    if (!rc && fwrite(model, 1, n_model, out.fp) != n_model)
      rc = vqgpt_file_error(out_model_path, false, "cannot write: %s", strerror(errno));
    if (rc)
      vqgpt_atomic_file_abort(&out);
    else
      rc = vqgpt_atomic_file_commit(&out);
  }
  free(model);
  free(lines);
  free(text);
  return rc;
}
