#include "weights/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/regular_file.h"
#include "core/finite.h"
#include "weights/json.h"

// The format is little-endian; tensor bytes are copied as they are.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

// The reference implementation refuses headers above 100 MB; a length beyond that is a
// corrupt or hostile file, not a model.
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

static const struct {
  const char *name;
  size_t size;
} dtype_info[] = {
    [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2},
    [ST_I32] = {"I32", 4}, [ST_I64] = {"I64", 8}, [ST_U8] = {"U8", 1},
    [ST_I8] = {"I8", 1},   [ST_F64] = {"F64", 8}, [ST_BOOL] = {"BOOL", 1},
};
#define N_DTYPES (sizeof dtype_info / sizeof dtype_info[0])

static bool dtype_valid(st_dtype t) { return (unsigned)t < N_DTYPES; }

size_t vqgpt_st_dtype_size(st_dtype t) { return dtype_valid(t) ? dtype_info[t].size : 0; }

const char *vqgpt_st_dtype_name(st_dtype t) { return dtype_valid(t) ? dtype_info[t].name : "?"; }

static bool dtype_parse(const char *s, st_dtype *out) {
  for (size_t i = 0; i < N_DTYPES; i++)
    if (strcmp(dtype_info[i].name, s) == 0) {
      *out = (st_dtype)i;
      return true;
    }
  return false;
}

// "<path>: <problem>" on one line: names come from the file (UTF-8, checked), so only
// control characters in them are replaced.
#define fail(path, ...) vqgpt_file_error(path, false, __VA_ARGS__)

// "[64, 16, 3, 3]" into buf.
static const char *shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
  size_t n = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < ndim && n < cap; i++)
    n += (size_t)snprintf(buf + n, cap - n, "%s%" PRId64, i ? ", " : "", shape[i]);
  if (n < cap) snprintf(buf + n, cap - n, "]");
  return buf;
}

// Product of dims times the element size, or false on size_t overflow.
static bool byte_count(int ndim, const int64_t *shape, size_t esize, size_t *numel,
                       size_t *nbytes) {
  size_t n = 1;
  for (int i = 0; i < ndim; i++)
    if (shape[i] == 0) n = 0;
  for (int i = 0; n && i < ndim; i++) {
    if ((uint64_t)shape[i] > SIZE_MAX || n > SIZE_MAX / (size_t)shape[i]) return false;
    n *= (size_t)shape[i];
  }
  if (n > SIZE_MAX / esize) return false;
  *numel = n;
  *nbytes = n * esize;
  return true;
}

static bool nonneg_int(const json_value *v, int64_t *out) {
  if (!v || v->type != JSON_NUMBER) return false;
  double d = v->number;
  if (!(d >= 0 && d < 9223372036854775808.0) || d != floor(d)) return false;
  *out = (int64_t)d;
  return true;
}

static int parse_tensor(const char *path, const char *name, const json_value *e,
                        const uint8_t *data_base, size_t data_size, st_tensor *t) {
  if (e->type != JSON_OBJECT) return fail(path, "tensor '%s': entry is not an object", name);
  const char *dt = vqgpt_json_get_string(e, "dtype");
  if (!dt) return fail(path, "tensor '%s': missing or non-string dtype", name);
  if (!dtype_parse(dt, &t->dtype)) return fail(path, "tensor '%s': unknown dtype '%s'", name, dt);

  const json_value *sh = vqgpt_json_get(e, "shape");
  if (!sh || sh->type != JSON_ARRAY)
    return fail(path, "tensor '%s': shape is missing or not an array", name);
  if (sh->count > ST_MAX_DIMS)
    return fail(path, "tensor '%s': shape has %zu dims, at most %d supported", name, sh->count,
                ST_MAX_DIMS);
  t->ndim = (int)sh->count;
  for (size_t i = 0; i < sh->count; i++)
    if (!nonneg_int(&sh->items[i], &t->shape[i]))
      return fail(path, "tensor '%s': shape is not an array of non-negative integers", name);
  char sbuf[256];
  shape_str(sbuf, sizeof sbuf, t->ndim, t->shape);
  size_t need;
  if (!byte_count(t->ndim, t->shape, dtype_info[t->dtype].size, &t->numel, &need))
    return fail(path, "tensor '%s': shape %s is too large (element count overflows)", name, sbuf);

  const json_value *off = vqgpt_json_get(e, "data_offsets");
  int64_t begin, end;
  if (!off || off->type != JSON_ARRAY || off->count != 2 || !nonneg_int(&off->items[0], &begin) ||
      !nonneg_int(&off->items[1], &end))
    return fail(path, "tensor '%s': data_offsets is missing or not two non-negative integers",
                name);
  if (begin > end)
    return fail(path, "tensor '%s': data_offsets [%" PRId64 ", %" PRId64 "] begin after end", name,
                begin, end);
  if ((uint64_t)end > data_size)
    return fail(path,
                "tensor '%s': data_offsets [%" PRId64 ", %" PRId64
                "] past the end of the data section (%zu bytes)",
                name, begin, end, data_size);
  t->nbytes = (size_t)(end - begin);
  if (t->nbytes != need)
    return fail(path, "tensor '%s': data_offsets span %zu bytes but %s shape %s needs %zu", name,
                t->nbytes, dtype_info[t->dtype].name, sbuf, need);
  t->data = data_base + begin;
  return 0;
}

static int parse_metadata(const char *path, const json_value *m, st_file *f) {
  if (m->type != JSON_OBJECT) return fail(path, "__metadata__ is not an object");
  if (!m->count) return 0;
  f->meta_keys = calloc(m->count, sizeof *f->meta_keys);
  f->meta_values = calloc(m->count, sizeof *f->meta_values);
  if (!f->meta_keys || !f->meta_values) return fail(path, "out of memory");
  for (size_t i = 0; i < m->count; i++) {
    if (m->items[i].type != JSON_STRING)
      return fail(path, "__metadata__ value of '%s' is not a string", m->keys[i]);
    f->meta_keys[i] = strdup(m->keys[i]);
    f->meta_values[i] = strdup(m->items[i].string);
    f->n_meta = i + 1;
    if (!f->meta_keys[i] || !f->meta_values[i]) return fail(path, "out of memory");
  }
  return 0;
}

static int cmp_by_offset(const void *a, const void *b) {
  const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
  return x->data < y->data ? -1 : x->data > y->data;
}

// The format's data section is exactly the tensors' bytes: sorted by offset they must not
// overlap, and (as the specification's byte buffer) leave no gap and nothing after them. A gap
// or trailing bytes mean a wrong header length or a corrupt file, e.g. a length one short still
// parses (the JSON ends in padding) and would read every tensor one byte off.
static int check_layout(const char *path, st_file *f, const uint8_t *base, size_t data_size) {
  const st_tensor **by = malloc((f->n_tensors ? f->n_tensors : 1) * sizeof *by);
  if (!by) return fail(path, "out of memory");
  size_t n = 0;
  for (size_t i = 0; i < f->n_tensors; i++)
    if (f->tensors[i].nbytes) by[n++] = &f->tensors[i];  // empty tensors occupy nothing
  qsort(by, n, sizeof *by, cmp_by_offset);
  int rc = 0;
  size_t end = 0;  // bytes [0, end) are covered so far
  const char *prev = NULL;
  for (size_t i = 0; i < n && !rc; i++) {
    const st_tensor *b = by[i];
    size_t bb = (size_t)(b->data - base);
    if (bb < end) {
      const st_tensor *a = by[i - 1];
      size_t ab = (size_t)(a->data - base);
      rc = fail(path, "tensors '%s' [%zu, %zu] and '%s' [%zu, %zu] overlap", a->name, ab,
                ab + a->nbytes, b->name, bb, bb + b->nbytes);
    } else if (bb > end) {
      rc = prev ? fail(path,
                       "bytes [%zu, %zu] of the data section belong to no tensor (a gap "
                       "between '%s' and '%s')",
                       end, bb, prev, b->name)
                : fail(path,
                       "bytes [0, %zu] of the data section belong to no tensor (a gap "
                       "before '%s')",
                       bb, b->name);
    }
    end = bb + b->nbytes;
    prev = b->name;
  }
  if (!rc && end != data_size)
    rc = fail(path,
              "%zu trailing byte%s after the tensors' data (the data section has %zu bytes, "
              "the tensors cover %zu): a wrong header length or a corrupt file",
              data_size - end, data_size - end == 1 ? "" : "s", data_size, end);
  free(by);
  return rc;
}

static int parse_header(st_file *f, const char *path) {
  const uint8_t *m = f->map;
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | m[i];
  if (hlen > ST_MAX_HEADER)
    return fail(path, "header length %" PRIu64 " is absurdly large (limit %" PRIu64 " bytes)", hlen,
                ST_MAX_HEADER);
  if (hlen > f->map_size - 8)
    return fail(path, "header length %" PRIu64 " is past the end of the file (%zu bytes)", hlen,
                f->map_size);
  const uint8_t *data_base = m + 8 + hlen;
  size_t data_size = f->map_size - 8 - (size_t)hlen;

  json_value *root = vqgpt_json_parse((const char *)m + 8, (size_t)hlen);
  if (!root) {
    char why[512];
    snprintf(why, sizeof why, "%s", vqgpt_last_error());
    // Duplicate names are valid JSON grammar but an invalid header.
    bool dup = strncmp(why, "duplicate key", 13) == 0;
    return fail(path, "header %s: %s", dup ? "is invalid" : "is not valid JSON", why);
  }
  int rc = 0;
  if (root->type != JSON_OBJECT) {
    rc = fail(path, "header is not a JSON object");
    goto done;
  }
  size_t n = root->count;
  if (vqgpt_json_get(root, "__metadata__")) n--;
  if (n) {
    f->tensors = calloc(n, sizeof *f->tensors);
    if (!f->tensors) {
      rc = fail(path, "out of memory");
      goto done;
    }
  }
  for (size_t i = 0; i < root->count && !rc; i++) {
    const char *key = root->keys[i];
    if (strcmp(key, "__metadata__") == 0) {
      rc = parse_metadata(path, &root->items[i], f);
      continue;
    }
    st_tensor *t = &f->tensors[f->n_tensors];
    rc = parse_tensor(path, key, &root->items[i], data_base, data_size, t);
    if (!rc) {
      t->name = strdup(key);
      if (!t->name)
        rc = fail(path, "out of memory");
      else
        f->n_tensors++;
    }
  }
  if (!rc) rc = check_layout(path, f, data_base, data_size);
  if (!rc && f->n_tensors && !(f->used = calloc(f->n_tensors, 1))) rc = fail(path, "out of memory");
done:
  vqgpt_json_free(root);
  return rc;
}

int vqgpt_st_open(st_file *f, const char *path) {
  memset(f, 0, sizeof *f);
  struct stat sb;
  int fd = vqgpt_open_regular(path, &sb);  // never blocks on a FIFO; regular files only
  if (fd < 0) return -1;
  if (sb.st_size < 8) {
    close(fd);
    return fail(path, "file too short (%lld bytes) to hold a safetensors header length",
                (long long)sb.st_size);
  }
  if ((uint64_t)sb.st_size > SIZE_MAX) {
    close(fd);
    return fail(path, "file too large to map");
  }
  void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);
  if (map == MAP_FAILED) return fail(path, "cannot map: %s", strerror(e));
  f->map = map;
  f->map_size = (size_t)sb.st_size;
  f->path = strdup(path);
  if (!f->path) {
    vqgpt_st_close(f);
    return fail(path, "out of memory");
  }
  if (parse_header(f, path)) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", vqgpt_last_error());
    vqgpt_st_close(f);
    return vqgpt_error("%s", msg);
  }
  return 0;
}

void vqgpt_st_close(st_file *f) {
  if (!f) return;
  if (f->map) munmap(f->map, f->map_size);
  for (size_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
  free(f->tensors);
  for (size_t i = 0; i < f->n_meta; i++) {
    free(f->meta_keys[i]);
    free(f->meta_values[i]);
  }
  free(f->meta_keys);
  free(f->meta_values);
  free(f->used);
  free(f->path);
  memset(f, 0, sizeof *f);
}

const st_tensor *vqgpt_st_find(const st_file *f, const char *name) {
  if (!f || !name) return NULL;
  for (size_t i = 0; i < f->n_tensors; i++)
    if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
  return NULL;
}

const char *vqgpt_st_meta(const st_file *f, const char *key) {
  if (!f || !key) return NULL;
  for (size_t i = 0; i < f->n_meta; i++)
    if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
  return NULL;
}

// Exact: every half (subnormals included) is representable in float; NaN payloads are kept
// in the top mantissa bits, so a NaN stays a NaN.
static float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu, bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else if (exp) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (!mant) {
    bits = sign;
  } else {
    uint32_t e = 113;  // a subnormal is mant * 2^-24: normalise the leading bit into place
    while (!(mant & 0x400u)) {
      mant <<= 1;
      e--;
    }
    bits = sign | (e << 23) | ((mant & 0x3FFu) << 13);
  }
  float x;
  memcpy(&x, &bits, sizeof x);
  return x;
}

static const st_tensor *lookup(const st_file *f, const char *name, int ndim, const int64_t *shape) {
  const char *path = f && f->path ? f->path : "(no file)";
  const st_tensor *t = vqgpt_st_find(f, name);
  if (!t) {
    fail(path, "missing tensor '%s'", name);
    return NULL;
  }
  if (!shape) {
    if (ndim < 0 || t->numel != (size_t)ndim) {
      char b[256];
      fail(path, "tensor '%s' has shape %s (%zu elements), expected %d elements", name,
           shape_str(b, sizeof b, t->ndim, t->shape), t->numel, ndim);
      return NULL;
    }
    f->used[t - f->tensors] = 1;
    return t;
  }
  bool same = ndim == t->ndim;
  for (int i = 0; same && i < ndim; i++) same = shape[i] == t->shape[i];
  if (!same) {
    char a[256], b[256];
    fail(path, "tensor '%s' has shape %s, expected %s", name,
         shape_str(a, sizeof a, t->ndim, t->shape),
         shape_str(b, sizeof b, ndim > 0 && ndim <= ST_MAX_DIMS ? ndim : 0, shape));
    return NULL;
  }
  f->used[t - f->tensors] = 1;
  return t;
}

int vqgpt_st_read_f32(const st_file *f, const char *name, float *dst, int ndim,
                      const int64_t *shape) {
  const st_tensor *t = lookup(f, name, ndim, shape);
  if (!t) return -1;
  const uint8_t *p = t->data;
  size_t n = t->numel;
  switch (t->dtype) {
    case ST_F32:
      if (n) memcpy(dst, p, n * 4);
      return 0;
    case ST_F16:
      for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
      return 0;
    case ST_BF16:
      for (size_t i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16;
        memcpy(&dst[i], &bits, 4);
      }
      return 0;
    case ST_F64:
      for (size_t i = 0; i < n; i++) {
        double d;
        memcpy(&d, p + 8 * i, 8);
        dst[i] = (float)d;
      }
      return 0;
    default:
      return fail(f->path, "tensor '%s' has dtype %s, expected F32, F16, BF16 or F64", name,
                  vqgpt_st_dtype_name(t->dtype));
  }
}

int vqgpt_st_read_i32(const st_file *f, const char *name, int32_t *dst, int ndim,
                      const int64_t *shape) {
  const st_tensor *t = lookup(f, name, ndim, shape);
  if (!t) return -1;
  size_t n = t->numel;
  if (t->dtype == ST_I32) {
    if (n) memcpy(dst, t->data, n * 4);
    return 0;
  }
  if (t->dtype != ST_I64)
    return fail(f->path, "tensor '%s' has dtype %s, expected I32 or I64", name,
                vqgpt_st_dtype_name(t->dtype));
  for (size_t i = 0; i < n; i++) {
    int64_t v;
    memcpy(&v, t->data + 8 * i, 8);
    if (v < INT32_MIN || v > INT32_MAX)
      return fail(f->path, "tensor '%s': value %" PRId64 " at index %zu does not fit in int32",
                  name, v, i);
    dst[i] = (int32_t)v;
  }
  return 0;
}

int vqgpt_st_read_weights(const st_file *f, const char *name, float *dst, int ndim,
                          const int64_t *shape) {
  if (vqgpt_st_read_f32(f, name, dst, ndim, shape)) return -1;
  size_t n = vqgpt_st_find(f, name)->numel, bad = vqgpt_first_nonfinite(dst, n);
  if (bad < n)
    return fail(f->path,
                "tensor '%s' holds a non-finite value (%g at index %zu): a diverged or "
                "corrupt model",
                name, dst[bad], bad);
  return 0;
}

bool vqgpt_st_mark_used(const st_file *f, const char *name) {
  const st_tensor *t = vqgpt_st_find(f, name);
  if (t) f->used[t - f->tensors] = 1;
  return t != NULL;
}

// Glob match where '*' stands for any run of characters (the only special character).
static bool glob_match(const char *pat, const char *s) {
  if (*pat == '*') {
    for (;; s++) {
      if (glob_match(pat + 1, s)) return true;
      if (!*s) return false;
    }
  }
  if (!*pat) return !*s;
  return *s == *pat && glob_match(pat + 1, s + 1);
}

int vqgpt_st_check_all_used(const st_file *f, const char *const *accept) {
  size_t first = f->n_tensors, n_unused = 0;
  for (size_t i = 0; i < f->n_tensors; i++) {
    if (f->used[i]) continue;
    bool ok = false;
    for (const char *const *p = accept; p && *p && !ok; p++)
      ok = glob_match(*p, f->tensors[i].name);
    if (ok) continue;
    if (!n_unused++) first = i;
  }
  if (!n_unused) return 0;
  return fail(f->path,
              "tensor '%s' is not part of the model its config describes (%zu such "
              "tensor%s): a wrong config or a file of another model",
              f->tensors[first].name, n_unused, n_unused == 1 ? "" : "s");
}

int vqgpt_st_check_format(const st_file *f, const char *want, const char *what) {
  const char *have = vqgpt_st_meta(f, "format");
  if (!have) return fail(f->path, "no 'format' in the metadata: not %s ('%s')", what, want);
  if (strcmp(have, want)) return fail(f->path, "format is '%s', not %s ('%s')", have, what, want);
  return 0;
}

// ---------------------------------------------------------------------------------------
// Writer

typedef struct {
  char *name;
  st_dtype dtype;
  int ndim;
  int64_t shape[ST_MAX_DIMS];
  size_t nbytes;
  const void *data;
} wtensor;

struct st_writer {
  wtensor *t;
  size_t n, cap;
  char **mkeys, **mvals;
  size_t nm, mcap;
  st_dtype float_storage;  // how F32 tensors are stored: F32, F16 or BF16
};

void vqgpt_st_writer_store_floats_as(st_writer *w, st_dtype t) {
  if (w && (t == ST_F32 || t == ST_F16 || t == ST_BF16)) w->float_storage = t;
}

// Round to nearest even, as torch's .half(): overflow becomes inf, small values subnormal.
uint16_t vqgpt_st_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffff;
  if (ax >= 0x7f800000)
    return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 | ((ax >> 13) & 0x3ff) : 0));
  if (ax >= 0x477ff000) return (uint16_t)(sign | 0x7c00);  // rounds past 65504
  if (ax < 0x38800000) {  // below the smallest normal half: a subnormal (or zero)
    if (ax < 0x33000000) return (uint16_t)sign;
    uint32_t mant = (ax & 0x7fffff) | 0x800000;
    int shift = 126 - (int)(ax >> 23);  // 14..24
    uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;
    return (uint16_t)(sign | h);
  }
  uint32_t h = ((ax - 0x38000000) >> 13), rem = ax & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return (uint16_t)(sign | h);
}

static uint16_t f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40);  // quiet NaN
  return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

static st_dtype stored_dtype(const st_writer *w, const wtensor *t) {
  return t->dtype == ST_F32 && w->float_storage != ST_F32 ? w->float_storage : t->dtype;
}

static size_t stored_bytes(const st_writer *w, const wtensor *t) {
  return stored_dtype(w, t) == t->dtype ? t->nbytes : t->nbytes / 2;
}

// Writes a tensor's data, converting F32 to the writer's storage type in chunks.
static bool write_tensor(const st_writer *w, const wtensor *t, FILE *fp) {
  st_dtype to = stored_dtype(w, t);
  if (to == t->dtype) return fwrite(t->data, 1, t->nbytes, fp) == t->nbytes;
  const float *src = t->data;
  size_t n = t->nbytes / 4;
  uint8_t buf[8192];
  for (size_t i = 0; i < n;) {
    size_t k = 0;
    for (; k < sizeof buf / 2 && i < n; k++, i++) {
      uint16_t h = to == ST_F16 ? vqgpt_st_f32_to_f16(src[i]) : f32_to_bf16(src[i]);
      buf[2 * k] = (uint8_t)h;
      buf[2 * k + 1] = (uint8_t)(h >> 8);
    }
    if (fwrite(buf, 1, 2 * k, fp) != 2 * k) return false;
  }
  return true;
}

st_writer *vqgpt_st_writer_new(void) {
  st_writer *w = calloc(1, sizeof *w);
  if (!w)
    vqgpt_error("safetensors writer: out of memory");
  else
    w->float_storage = ST_F32;
  return w;
}

void vqgpt_st_writer_free(st_writer *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n; i++) free(w->t[i].name);
  free(w->t);
  for (size_t i = 0; i < w->nm; i++) {
    free(w->mkeys[i]);
    free(w->mvals[i]);
  }
  free(w->mkeys);
  free(w->mvals);
  free(w);
}

static int check_text(const char *what, const char *s) {
  if (!s) return fail("safetensors writer", "%s is NULL", what);
  if (!vqgpt_json_utf8_valid(s, strlen(s)))
    return fail("safetensors writer", "%s is not valid UTF-8", what);
  return 0;
}

int vqgpt_st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim,
                        const int64_t *shape, const void *data) {
  if (!w) return vqgpt_error("safetensors writer: no writer (out of memory?)");
  if (check_text("tensor name", name)) return -1;
  if (strcmp(name, "__metadata__") == 0)
    return fail("safetensors writer", "'__metadata__' is reserved, not a tensor name");
  if (!dtype_valid(dtype)) return fail("safetensors writer", "tensor '%s': invalid dtype", name);
  if (ndim < 0 || ndim > ST_MAX_DIMS || (ndim && !shape))
    return fail("safetensors writer", "tensor '%s': %d dims (0 to %d supported)", name, ndim,
                ST_MAX_DIMS);
  for (int i = 0; i < ndim; i++)
    if (shape[i] < 0) return fail("safetensors writer", "tensor '%s': negative dimension", name);
  size_t numel, nbytes;
  if (!byte_count(ndim, shape, dtype_info[dtype].size, &numel, &nbytes))
    return fail("safetensors writer", "tensor '%s': shape too large", name);
  if (nbytes && !data) return fail("safetensors writer", "tensor '%s': no data", name);
  for (size_t i = 0; i < w->n; i++)
    if (strcmp(w->t[i].name, name) == 0)
      return fail("safetensors writer", "duplicate tensor name '%s'", name);
  if (w->n == w->cap) {
    size_t nc = w->cap ? 2 * w->cap : 64;
    wtensor *t = realloc(w->t, nc * sizeof *t);
    if (!t) return vqgpt_error("safetensors writer: out of memory");
    w->t = t;
    w->cap = nc;
  }
  wtensor *t = &w->t[w->n];
  memset(t, 0, sizeof *t);
  t->name = strdup(name);
  if (!t->name) return vqgpt_error("safetensors writer: out of memory");
  t->dtype = dtype;
  t->ndim = ndim;
  if (ndim) memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
  t->nbytes = nbytes;
  t->data = data;
  w->n++;
  return 0;
}

int vqgpt_st_writer_meta(st_writer *w, const char *key, const char *value) {
  if (!w) return vqgpt_error("safetensors writer: no writer (out of memory?)");
  if (check_text("metadata key", key) || check_text("metadata value", value)) return -1;
  char *v = strdup(value);
  if (!v) return vqgpt_error("safetensors writer: out of memory");
  for (size_t i = 0; i < w->nm; i++)
    if (strcmp(w->mkeys[i], key) == 0) {  // setting a key again replaces its value
      free(w->mvals[i]);
      w->mvals[i] = v;
      return 0;
    }
  if (w->nm == w->mcap) {
    size_t nc = w->mcap ? 2 * w->mcap : 8;
    char **k = realloc(w->mkeys, nc * sizeof *k);
    if (k) w->mkeys = k;
    char **vv = k ? realloc(w->mvals, nc * sizeof *vv) : NULL;
    if (vv) w->mvals = vv;
    if (!k || !vv) {
      free(v);
      return vqgpt_error("safetensors writer: out of memory");
    }
    w->mcap = nc;
  }
  w->mkeys[w->nm] = strdup(key);
  if (!w->mkeys[w->nm]) {
    free(v);
    return vqgpt_error("safetensors writer: out of memory");
  }
  w->mvals[w->nm++] = v;
  return 0;
}

typedef struct {
  char *s;
  size_t n, cap;
  bool oom;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->n + n + 1) nc *= 2;
    char *p = realloc(b->s, nc);
    if (!p) {
      b->oom = true;
      return;
    }
    b->s = p;
    b->cap = nc;
  }
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = '\0';
}

__attribute__((format(printf, 2, 3))) static void sb_printf(strbuf *b, const char *fmt, ...) {
  char tmp[128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0) sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

// A JSON string literal; the text is known to be valid UTF-8, so only quotes, backslashes
// and control characters need escapes.
static void sb_quote(strbuf *b, const char *s) {
  sb_put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      sb_put(b, e, 2);
    } else if (c < 0x20) {
      sb_printf(b, "\\u%04x", c);
    } else {
      sb_put(b, (const char *)&c, 1);
    }
  }
  sb_put(b, "\"", 1);
}

int vqgpt_st_writer_save(st_writer *w, const char *path) {
  if (!w) return vqgpt_error("%s: cannot write: no writer (out of memory?)", path);
  strbuf b = {0};
  sb_put(&b, "{", 1);
  if (w->nm) {
    sb_put(&b, "\"__metadata__\":{", 16);
    for (size_t i = 0; i < w->nm; i++) {
      if (i) sb_put(&b, ",", 1);
      sb_quote(&b, w->mkeys[i]);
      sb_put(&b, ":", 1);
      sb_quote(&b, w->mvals[i]);
    }
    sb_put(&b, "}", 1);
  }
  size_t off = 0;
  for (size_t i = 0; i < w->n; i++) {
    const wtensor *t = &w->t[i];
    if (i || w->nm) sb_put(&b, ",", 1);
    sb_quote(&b, t->name);
    sb_printf(&b, ":{\"dtype\":\"%s\",\"shape\":[", dtype_info[stored_dtype(w, t)].name);
    for (int d = 0; d < t->ndim; d++) sb_printf(&b, "%s%" PRId64, d ? "," : "", t->shape[d]);
    sb_printf(&b, "],\"data_offsets\":[%zu,%zu]}", off, off + stored_bytes(w, t));
    off += stored_bytes(w, t);
  }
  sb_put(&b, "}", 1);
  // Padding to a multiple of 8 keeps the data section 8-byte aligned in a mapping.
  while (!b.oom && b.n % 8) sb_put(&b, " ", 1);
  if (b.oom) {
    free(b.s);
    return vqgpt_error("%s: cannot write: out of memory", path);
  }
  if ((uint64_t)b.n > ST_MAX_HEADER) {
    free(b.s);
    return vqgpt_error("%s: cannot write: header of %zu bytes exceeds the format's limit", path,
                       b.n);
  }

  atomic_file af;
  if (vqgpt_atomic_file_open(&af, path)) {
    free(b.s);
    return -1;
  }
  uint8_t len8[8];
  errno = 0;
  for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)b.n >> (8 * i));
  bool ok = fwrite(len8, 1, 8, af.fp) == 8 && fwrite(b.s, 1, b.n, af.fp) == b.n;
  for (size_t i = 0; ok && i < w->n; i++)
    if (w->t[i].nbytes) ok = write_tensor(w, &w->t[i], af.fp);
  int e = errno;
  free(b.s);
  if (!ok) {
    vqgpt_atomic_file_abort(&af);
    return vqgpt_error("%s: cannot write: %s", path, strerror(e ? e : EIO));
  }
  return vqgpt_atomic_file_commit(&af);
}
