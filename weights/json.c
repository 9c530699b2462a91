#include "weights/json.h"

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define JSON_MAX_DEPTH 64

typedef struct {
  const char *s;
  size_t len;
  size_t pos;
  int depth;
} parser;

static int fail(const parser *p, const char *what) {
  return vqgpt_error("%s at byte %zu", what, p->pos);
}

static int fail_oom(const parser *p) { return fail(p, "out of memory"); }

static void skip_ws(parser *p) {
  while (p->pos < p->len) {
    char c = p->s[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    p->pos++;
  }
}

static void free_contents(json_value *v) {
  if (v->type == JSON_STRING) free(v->string);
  if (v->type == JSON_ARRAY || v->type == JSON_OBJECT) {
    for (size_t i = 0; i < v->count; i++) {
      free_contents(&v->items[i]);
      if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
  }
  memset(v, 0, sizeof *v);
}

void vqgpt_json_free(json_value *v) {
  if (!v) return;
  free_contents(v);
  free(v);
}

static int parse_value(parser *p, json_value *out);

static int literal(parser *p, const char *word) {
  size_t n = strlen(word);
  if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) return fail(p, "invalid literal");
  p->pos += n;
  return 0;
}

static int hex4(parser *p, unsigned *out) {
  if (p->len - p->pos < 4) return fail(p, "truncated \\u escape");
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p->s[p->pos + i];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (unsigned)(c - 'A' + 10);
    else
      return fail(p, "invalid hex digit in \\u escape");
  }
  p->pos += 4;
  *out = v;
  return 0;
}

static size_t put_utf8(char *dst, unsigned cp) {
  if (cp < 0x80) {
    dst[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    dst[0] = (char)(0xC0 | (cp >> 6));
    dst[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    dst[0] = (char)(0xE0 | (cp >> 12));
    dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    dst[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  dst[0] = (char)(0xF0 | (cp >> 18));
  dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  dst[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

// Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs, no encoded
// surrogates, nothing above U+10FFFF), or 0 if it is not one.
static size_t utf8_seq(const unsigned char *s, size_t avail) {
  unsigned c = s[0];
  size_t n;
  unsigned cp, min;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0)
    n = 2, cp = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0)
    n = 3, cp = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0)
    n = 4, cp = c & 0x07, min = 0x10000;
  else
    return 0;
  if (avail < n) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

// The caller has consumed the opening quote. Escapes never lengthen the text (a \uXXXX of
// 6 bytes becomes at most 3, a surrogate pair of 12 becomes 4), so the raw span bounds the
// output size.
static int parse_string(parser *p, char **out) {
  size_t start = p->pos, end = start;
  while (end < p->len && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
  if (end >= p->len) {
    p->pos = p->len;
    return fail(p, "unterminated string");
  }
  char *buf = malloc(end - start + 1);
  if (!buf) return fail_oom(p);
  size_t n = 0;
  while (p->pos < end) {
    unsigned char c = (unsigned char)p->s[p->pos];
    if (c < 0x20) {
      free(buf);
      return fail(p, "control character in string");
    }
    if (c != '\\') {
      size_t k = utf8_seq((const unsigned char *)p->s + p->pos, end - p->pos);
      if (!k) {
        free(buf);
        return fail(p, "invalid UTF-8 in string");
      }
      memcpy(buf + n, p->s + p->pos, k);
      n += k;
      p->pos += k;
      continue;
    }
    p->pos++;
    char e = p->s[p->pos++];
    switch (e) {
      case '"':
        buf[n++] = '"';
        break;
      case '\\':
        buf[n++] = '\\';
        break;
      case '/':
        buf[n++] = '/';
        break;
      case 'b':
        buf[n++] = '\b';
        break;
      case 'f':
        buf[n++] = '\f';
        break;
      case 'n':
        buf[n++] = '\n';
        break;
      case 'r':
        buf[n++] = '\r';
        break;
      case 't':
        buf[n++] = '\t';
        break;
      case 'u': {
        unsigned cp;
        if (hex4(p, &cp)) goto bad;
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
          p->pos -= 6;
          fail(p, "unpaired low surrogate in \\u escape");
          goto bad;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          unsigned lo;
          if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
            fail(p, "high surrogate not followed by a low surrogate");
            goto bad;
          }
          p->pos += 2;
          if (hex4(p, &lo)) goto bad;
          if (lo < 0xDC00 || lo > 0xDFFF) {
            p->pos -= 6;
            fail(p, "high surrogate not followed by a low surrogate");
            goto bad;
          }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        // A NUL would silently truncate the C string (and could make two distinct keys equal).
        if (cp == 0) {
          p->pos -= 6;
          fail(p, "\\u0000 in string is not supported");
          goto bad;
        }
        n += put_utf8(buf + n, cp);
        break;
      }
      default:
        p->pos -= 2;
        fail(p, "invalid escape in string");
        goto bad;
    }
  }
  p->pos = end + 1;
  buf[n] = '\0';
  *out = buf;
  return 0;
bad:
  free(buf);
  return -1;
}

static int parse_number(parser *p, double *out) {
  size_t start = p->pos, i = p->pos;
  const char *s = p->s;
  if (i < p->len && s[i] == '-') i++;
  if (i >= p->len || s[i] < '0' || s[i] > '9') {
    p->pos = i;
    return fail(p, "invalid number");
  }
  if (s[i] == '0') {
    i++;
    if (i < p->len && s[i] >= '0' && s[i] <= '9') {
      p->pos = i;
      return fail(p, "leading zero in number");
    }
  } else {
    while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
  }
  if (i < p->len && s[i] == '.') {
    i++;
    if (i >= p->len || s[i] < '0' || s[i] > '9') {
      p->pos = i;
      return fail(p, "digit expected after decimal point");
    }
    while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
  }
  if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= p->len || s[i] < '0' || s[i] > '9') {
      p->pos = i;
      return fail(p, "digit expected in exponent");
    }
    while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
  }
  // strtod needs a NUL-terminated copy, and follows the C locale's decimal point only
  // when LC_NUMERIC is "C": substitute the current one so "1.5" parses anywhere.
  size_t n = i - start;
  char small[64], *buf = n < sizeof small ? small : malloc(n + 1);
  if (!buf) return fail_oom(p);
  memcpy(buf, s + start, n);
  buf[n] = '\0';
  const char *dp = localeconv()->decimal_point;
  if (dp && dp[0] && dp[0] != '.' && !dp[1]) {
    char *dot = strchr(buf, '.');
    if (dot) *dot = dp[0];
  }
  *out = strtod(buf, NULL);
  if (buf != small) free(buf);
  p->pos = i;
  return 0;
}

static int cmp_key_ptr(const void *a, const void *b) {
  return strcmp(**(char *const *const *)a, **(char *const *const *)b);
}

// Duplicate keys make lookups ambiguous (and in a safetensors header, a tensor name
// appearing twice), so the strict reader rejects them.
static int check_duplicates(parser *p, const json_value *obj) {
  if (obj->count < 2) return 0;
  char ***idx = malloc(obj->count * sizeof *idx);
  if (!idx) return fail_oom(p);
  for (size_t i = 0; i < obj->count; i++) idx[i] = &obj->keys[i];
  qsort(idx, obj->count, sizeof *idx, cmp_key_ptr);
  for (size_t i = 1; i < obj->count; i++) {
    if (strcmp(*idx[i - 1], *idx[i]) == 0) {
      char msg[160];
      snprintf(msg, sizeof msg, "duplicate key '%.100s' in object ending", *idx[i]);
      free(idx);
      return fail(p, msg);
    }
  }
  free(idx);
  return 0;
}

// Grows items (and keys for objects) geometrically.
static int reserve(parser *p, json_value *v, size_t *cap) {
  if (v->count < *cap) return 0;
  size_t nc = *cap ? *cap * 2 : 4;
  json_value *items = realloc(v->items, nc * sizeof *items);
  if (!items) return fail_oom(p);
  v->items = items;
  if (v->type == JSON_OBJECT) {
    char **keys = realloc(v->keys, nc * sizeof *keys);
    if (!keys) return fail_oom(p);
    v->keys = keys;
  }
  *cap = nc;
  return 0;
}

static int parse_container(parser *p, json_value *out, bool is_object) {
  char close = is_object ? '}' : ']';
  if (++p->depth > JSON_MAX_DEPTH) return fail(p, "nesting deeper than 64 levels");
  out->type = is_object ? JSON_OBJECT : JSON_ARRAY;
  size_t cap = 0;
  p->pos++;
  skip_ws(p);
  if (p->pos < p->len && p->s[p->pos] == close) {
    p->pos++;
    p->depth--;
    return 0;
  }
  for (;;) {
    if (reserve(p, out, &cap)) return -1;
    skip_ws(p);
    if (is_object) {
      if (p->pos >= p->len || p->s[p->pos] != '"') return fail(p, "object key expected");
      p->pos++;
      if (parse_string(p, &out->keys[out->count])) return -1;
      skip_ws(p);
      if (p->pos >= p->len || p->s[p->pos] != ':') {
        free(out->keys[out->count]);
        return fail(p, "':' expected");
      }
      p->pos++;
    }
    json_value *item = &out->items[out->count];
    memset(item, 0, sizeof *item);
    if (parse_value(p, item)) {
      out->count++;  // the partial item (and its key) may own memory: let free_contents see it
      return -1;
    }
    out->count++;
    skip_ws(p);
    if (p->pos >= p->len) return fail(p, is_object ? "unterminated object" : "unterminated array");
    char c = p->s[p->pos];
    if (c == ',') {
      p->pos++;
      continue;
    }
    if (c == close) break;
    return fail(p, is_object ? "',' or '}' expected" : "',' or ']' expected");
  }
  p->pos++;
  p->depth--;
  return is_object ? check_duplicates(p, out) : 0;
}

static int parse_value(parser *p, json_value *out) {
  skip_ws(p);
  if (p->pos >= p->len) return fail(p, "value expected");
  char c = p->s[p->pos];
  switch (c) {
    case '{':
      return parse_container(p, out, true);
    case '[':
      return parse_container(p, out, false);
    case '"':
      p->pos++;
      if (parse_string(p, &out->string)) return -1;
      out->type = JSON_STRING;
      return 0;
    case 't':
      out->type = JSON_BOOL;
      out->boolean = true;
      return literal(p, "true");
    case 'f':
      out->type = JSON_BOOL;
      return literal(p, "false");
    case 'n':
      out->type = JSON_NULL;
      return literal(p, "null");
    default:
      if (c == '-' || (c >= '0' && c <= '9')) {
        out->type = JSON_NUMBER;
        return parse_number(p, &out->number);
      }
      return fail(p, "unexpected character");
  }
}

json_value *vqgpt_json_parse(const char *text, size_t len) {
  parser p = {text, len, 0, 0};
  json_value *root = calloc(1, sizeof *root);
  if (!root) {
    vqgpt_error("out of memory at byte 0");
    return NULL;
  }
  if (!text && len) {
    free(root);
    vqgpt_error("no text at byte 0");
    return NULL;
  }
  if (parse_value(&p, root)) {
    vqgpt_json_free(root);
    return NULL;
  }
  skip_ws(&p);
  if (p.pos != p.len) {
    fail(&p, "trailing characters after the document");
    vqgpt_json_free(root);
    return NULL;
  }
  return root;
}

const json_value *vqgpt_json_get(const json_value *obj, const char *key) {
  if (!obj || obj->type != JSON_OBJECT || !key) return NULL;
  for (size_t i = 0; i < obj->count; i++)
    if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
  return NULL;
}

const json_value *vqgpt_json_at(const json_value *arr, size_t i) {
  if (!arr || arr->type != JSON_ARRAY || i >= arr->count) return NULL;
  return &arr->items[i];
}

// Whole and inside [-2^63, 2^63): the upper bound is exclusive because 2^63 itself is the
// nearest double to INT64_MAX and would overflow the conversion.
static bool number_to_int(const json_value *v, int64_t *out) {
  if (!v || v->type != JSON_NUMBER) return false;
  double d = v->number;
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != floor(d)) return false;
  *out = (int64_t)d;
  return true;
}

bool vqgpt_json_get_int(const json_value *obj, const char *key, int64_t *out) {
  int64_t v;
  if (!number_to_int(vqgpt_json_get(obj, key), &v)) return false;
  *out = v;
  return true;
}

bool vqgpt_json_get_number(const json_value *obj, const char *key, double *out) {
  const json_value *v = vqgpt_json_get(obj, key);
  if (!v || v->type != JSON_NUMBER) return false;
  *out = v->number;
  return true;
}

bool vqgpt_json_get_bool(const json_value *obj, const char *key, bool *out) {
  const json_value *v = vqgpt_json_get(obj, key);
  if (!v || v->type != JSON_BOOL) return false;
  *out = v->boolean;
  return true;
}

const char *vqgpt_json_get_string(const json_value *obj, const char *key) {
  const json_value *v = vqgpt_json_get(obj, key);
  return v && v->type == JSON_STRING ? v->string : NULL;
}

int vqgpt_json_get_int_array(const json_value *obj, const char *key, int64_t *out, int max) {
  const json_value *v = vqgpt_json_get(obj, key);
  if (!v || v->type != JSON_ARRAY || max < 0 || v->count > (size_t)max) return -1;
  int64_t x;
  for (size_t i = 0; i < v->count; i++)  // validate first: out is untouched on failure
    if (!number_to_int(&v->items[i], &x)) return -1;
  for (size_t i = 0; i < v->count; i++) number_to_int(&v->items[i], &out[i]);
  return (int)v->count;
}

bool vqgpt_json_utf8_valid(const char *s, size_t len) {
  for (size_t i = 0; i < len;) {
    size_t k = utf8_seq((const unsigned char *)s + i, len - i);
    if (!k) return false;
    i += k;
  }
  return true;
}
