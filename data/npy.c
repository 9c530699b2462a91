#include "data/npy.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/regular_file.h"

// '<i4' and '<i8' bytes are copied as they are.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

// Code files hold a few grids; a header dict longer than this is not one of ours (format 1.0
// caps it at 65535, 2.0 allows 4 GiB).
#define NPY_MAX_HEADER (1u << 20)

// "<path>: <problem>", with bytes from the (binary) header made printable ASCII.
#define fail(path, ...) vqgpt_file_error(path, true, __VA_ARGS__)

// ---------------------------------------------------------------------------------------
// Header dict: the Python literal numpy writes, e.g.
//   {'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }
// Only the forms numpy (and Python 2's repr with 'L' suffixes) produce are accepted.

typedef struct {
  const char *s;
  size_t n, pos;
  const char *path;
  char descr[16];
  int fortran;  // -1 unset
  int ndim;     // -1 unset
  int64_t shape[NPY_MAX_DIMS];
} hparser;

static int hfail(hparser *h, const char *what) {
  return fail(h->path, "malformed header (%s at byte %zu of the dict)", what, h->pos);
}

static void hws(hparser *h) {
  while (h->pos < h->n) {
    char c = h->s[h->pos];
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') break;
    h->pos++;
  }
}

static bool heat(hparser *h, char c) {
  hws(h);
  if (h->pos < h->n && h->s[h->pos] == c) {
    h->pos++;
    return true;
  }
  return false;
}

// A quoted string without escapes (none occur in the keys and dtype strings numpy writes).
static int hstring(hparser *h, char *out, size_t cap) {
  hws(h);
  if (h->pos >= h->n || (h->s[h->pos] != '\'' && h->s[h->pos] != '"'))
    return hfail(h, "quoted string expected");
  char q = h->s[h->pos++];
  size_t start = h->pos;
  while (h->pos < h->n && h->s[h->pos] != q) {
    if (h->s[h->pos] == '\\') return hfail(h, "escape in string");
    h->pos++;
  }
  if (h->pos >= h->n) return hfail(h, "unterminated string");
  size_t len = h->pos - start;
  h->pos++;
  if (len >= cap) {
    h->pos = start;
    return hfail(h, "string too long");
  }
  memcpy(out, h->s + start, len);
  out[len] = '\0';
  return 0;
}

static int hint(hparser *h, int64_t *out) {
  hws(h);
  size_t start = h->pos;
  int64_t v = 0;
  while (h->pos < h->n && h->s[h->pos] >= '0' && h->s[h->pos] <= '9') {
    int d = h->s[h->pos++] - '0';
    if (v > (INT64_MAX - d) / 10) {
      h->pos = start;
      return hfail(h, "dimension too large");
    }
    v = v * 10 + d;
  }
  if (h->pos == start) return hfail(h, "non-negative integer expected");
  if (h->pos < h->n && h->s[h->pos] == 'L') h->pos++;
  *out = v;
  return 0;
}

static int hshape(hparser *h) {
  if (!heat(h, '(')) return hfail(h, "shape tuple expected");
  int n = 0;
  bool comma = false;  // a 1-tuple needs its trailing comma: "(5)" is the integer 5
  while (!heat(h, ')')) {
    if (n && !comma) return hfail(h, "',' expected in shape");
    int64_t v = 0;
    if (hint(h, &v)) return -1;
    if (n < NPY_MAX_DIMS) h->shape[n] = v;
    n++;
    comma = heat(h, ',');
  }
  if (n == 1 && !comma) return hfail(h, "shape is not a tuple");
  if (n == 0)
    return fail(h->path, "0-dimensional arrays are not supported (need 1 to %d dims)",
                NPY_MAX_DIMS);
  if (n > NPY_MAX_DIMS)
    return fail(h->path, "array has %d dims, at most %d supported", n, NPY_MAX_DIMS);
  h->ndim = n;
  return 0;
}

static int hbool(hparser *h, int *out) {
  hws(h);
  if (h->n - h->pos >= 4 && memcmp(h->s + h->pos, "True", 4) == 0) {
    h->pos += 4;
    *out = 1;
    return 0;
  }
  if (h->n - h->pos >= 5 && memcmp(h->s + h->pos, "False", 5) == 0) {
    h->pos += 5;
    *out = 0;
    return 0;
  }
  return hfail(h, "True or False expected");
}

static int parse_dict(hparser *h) {
  h->descr[0] = '\0';
  h->fortran = h->ndim = -1;
  if (!heat(h, '{')) return hfail(h, "'{' expected");
  bool need_sep = false;
  while (!heat(h, '}')) {
    if (need_sep) return hfail(h, "',' or '}' expected");
    char key[32];
    if (hstring(h, key, sizeof key)) return -1;
    if (!heat(h, ':')) return hfail(h, "':' expected");
    bool seen;
    if (strcmp(key, "descr") == 0) {
      seen = h->descr[0] != '\0';
      if (!seen && hstring(h, h->descr, sizeof h->descr)) return -1;
      if (!seen && !h->descr[0]) return hfail(h, "empty descr");
    } else if (strcmp(key, "fortran_order") == 0) {
      seen = h->fortran != -1;
      if (!seen && hbool(h, &h->fortran)) return -1;
    } else if (strcmp(key, "shape") == 0) {
      seen = h->ndim != -1;
      if (!seen && hshape(h)) return -1;
    } else {
      return fail(h->path, "malformed header (unexpected key '%s')", key);
    }
    if (seen) return fail(h->path, "malformed header (key '%s' appears twice)", key);
    need_sep = !heat(h, ',');
  }
  hws(h);
  if (h->pos != h->n) return hfail(h, "trailing characters after the dict");
  if (!h->descr[0]) return fail(h->path, "malformed header (missing key 'descr')");
  if (h->fortran == -1) return fail(h->path, "malformed header (missing key 'fortran_order')");
  if (h->ndim == -1) return fail(h->path, "malformed header (missing key 'shape')");
  return 0;
}

// ---------------------------------------------------------------------------------------

// The size was checked against fstat; a short read now means the file changed under us.
static int read_exact(const char *path, FILE *fp, void *dst, size_t n) {
  if (fread(dst, 1, n, fp) == n) return 0;
  if (feof(fp)) return fail(path, "truncated while reading (file changed?)");
  return fail(path, "cannot read: %s", strerror(errno));
}

static int read_file(const char *path, FILE *fp, size_t fsize, int32_t **data, int *ndim,
                     int64_t shape[NPY_MAX_DIMS]) {
  unsigned char pre[12];
  size_t have = fsize < 8 ? fsize : 8;
  if (read_exact(path, fp, pre, have)) return -1;
  if (have < 6 ? memcmp(pre, npy_magic, have) != 0 : memcmp(pre, npy_magic, 6) != 0)
    return fail(path, "not a .npy file (bad magic)");
  if (fsize < 10) return fail(path, "truncated: %zu bytes, too short for a .npy preamble", fsize);
  int major = pre[6], minor = pre[7];
  if (major < 1 || major > 3 || minor != 0)
    return fail(path, "unsupported .npy format version %d.%d (1.0, 2.0 and 3.0 are read)", major,
                minor);
  size_t lenbytes = major == 1 ? 2 : 4, start = 8 + lenbytes;
  if (fsize < start)
    return fail(path, "truncated: %zu bytes, too short for a .npy preamble", fsize);
  if (read_exact(path, fp, pre + 8, lenbytes)) return -1;
  size_t hlen = 0;
  for (size_t i = lenbytes; i-- > 0;) hlen = hlen << 8 | pre[8 + i];
  if (hlen > NPY_MAX_HEADER)
    return fail(path, "malformed header (length %zu is absurdly large)", hlen);
  if (hlen > fsize - start)
    return fail(path, "truncated: header needs %zu bytes, file has %zu", start + hlen, fsize);
  char *text = malloc(hlen + 1);
  if (!text) return fail(path, "out of memory");
  if (read_exact(path, fp, text, hlen)) {
    free(text);
    return -1;
  }
  text[hlen] = '\0';
  hparser h = {.s = text, .n = hlen, .path = path};
  int rc = parse_dict(&h);
  free(text);
  if (rc) return -1;

  size_t esize;
  if (strcmp(h.descr, "<i4") == 0)
    esize = 4;
  else if (strcmp(h.descr, "<i8") == 0)
    esize = 8;
  else if (h.descr[0] == '>')
    return fail(path, "big-endian dtype '%s' is not supported (need '<i4' or '<i8')", h.descr);
  else
    return fail(path, "unsupported dtype '%s' (need '<i4' or '<i8')", h.descr);
  if (h.fortran) return fail(path, "fortran_order True is not supported (need C order)");

  // The file size bounds the element count before anything is allocated from the header.
  size_t avail = fsize - start - hlen, numel = 1;
  bool too_big = false;
  for (int i = 0; i < h.ndim; i++) {
    if (h.shape[i] == 0) numel = 0;
  }
  for (int i = 0; numel && i < h.ndim; i++) {
    if ((uint64_t)h.shape[i] > SIZE_MAX / numel) {
      too_big = true;
      break;
    }
    numel *= (size_t)h.shape[i];
  }
  if (too_big || numel > avail / esize) {
    char dims[96];
    size_t k = 0;
    for (int i = 0; i < h.ndim; i++)
      k += (size_t)snprintf(dims + k, sizeof dims - k, "%s%lld", i ? ", " : "",
                            (long long)h.shape[i]);
    if (too_big) return fail(path, "truncated: shape (%s) is larger than any file", dims);
    return fail(path, "truncated: shape (%s) needs %zu data bytes, file has %zu", dims,
                numel * esize, avail);
  }
  // Trailing bytes are tolerated: np.save may append further arrays to the same stream.

  int32_t *out = malloc(numel ? numel * sizeof *out : 1);
  if (!out) return fail(path, "out of memory");
  if (esize == 4) {
    if (numel && read_exact(path, fp, out, numel * 4)) {
      free(out);
      return -1;
    }
  } else {
    int64_t chunk[1024];
    for (size_t i = 0; i < numel;) {
      size_t m = numel - i < 1024 ? numel - i : 1024;
      if (read_exact(path, fp, chunk, m * 8)) {
        free(out);
        return -1;
      }
      for (size_t j = 0; j < m; j++, i++) {
        if (chunk[j] < INT32_MIN || chunk[j] > INT32_MAX) {
          free(out);
          return fail(path, "value %lld at index %zu is outside the int32 range",
                      (long long)chunk[j], i);
        }
        out[i] = (int32_t)chunk[j];
      }
    }
  }
  *data = out;
  *ndim = h.ndim;
  for (int i = 0; i < NPY_MAX_DIMS; i++) shape[i] = i < h.ndim ? h.shape[i] : 0;
  return 0;
}

int vqgpt_npy_read_i32(const char *path, int32_t **data, int *ndim, int64_t shape[NPY_MAX_DIMS]) {
  *data = NULL;
  *ndim = 0;
  struct stat sb;
  FILE *fp = vqgpt_fopen_regular(path, &sb);
  if (!fp) return -1;
  int rc = read_file(path, fp, (size_t)sb.st_size, data, ndim, shape);
  fclose(fp);
  return rc;
}

int vqgpt_npy_write_i32(const char *path, const int32_t *data, int ndim, const int64_t *shape) {
  if (ndim < 1 || ndim > NPY_MAX_DIMS || !shape)
    return fail(path, "cannot write: %d dims (1 to %d supported)", ndim, NPY_MAX_DIMS);
  size_t numel = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return fail(path, "cannot write: negative dimension %lld", (long long)shape[i]);
    if (shape[i] && (uint64_t)shape[i] > SIZE_MAX / 4 / (numel ? numel : 1))
      return fail(path, "cannot write: shape too large");
    numel *= (size_t)shape[i];
  }
  if (numel && !data) return fail(path, "cannot write: no data");

  char dict[192];
  int n = snprintf(dict, sizeof dict, "{'descr': '<i4', 'fortran_order': False, 'shape': (");
  for (int i = 0; i < ndim; i++)
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%lld", i ? ", " : "", (long long)shape[i]);
  n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", ndim == 1 ? "," : "");
  // As numpy does: room for the first dimension to grow to 21 digits (appending in place),
  // then spaces and a newline up to a 64-byte boundary, so our files are byte-identical.
  char digits[24];
  size_t grow = 21 - (size_t)snprintf(digits, sizeof digits, "%lld", (long long)shape[0]);
  memset(dict + n, ' ', grow);
  n += (int)grow;
  size_t total = 10 + (size_t)n + 1;
  size_t padded = (total + 63) / 64 * 64;
  unsigned char head[256];
  memcpy(head, npy_magic, 6);
  head[6] = 1;
  head[7] = 0;
  size_t hlen = padded - 10;
  head[8] = (unsigned char)(hlen & 0xff);
  head[9] = (unsigned char)(hlen >> 8);
  memcpy(head + 10, dict, (size_t)n);
  memset(head + 10 + n, ' ', padded - 10 - (size_t)n - 1);
  head[padded - 1] = '\n';

  atomic_file af;
  if (vqgpt_atomic_file_open(&af, path)) return -1;
  errno = 0;
  bool ok = fwrite(head, 1, padded, af.fp) == padded &&
            (!numel || fwrite(data, 4, numel, af.fp) == numel);
  if (!ok) {
    int e = errno ? errno : EIO;
    vqgpt_atomic_file_abort(&af);
    return vqgpt_error("%s: cannot write: %s", path, strerror(e));
  }
  return vqgpt_atomic_file_commit(&af);
}
