// .npy code files: byte-exact output (what numpy.save writes), round trips, the header forms
// numpy has produced over time, and hostile files crafted here.
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/blas.h"
#include "core/error.h"
#include "data/npy.h"
#include "test_util.h"

// A .npy of the given version and dict text, followed by `data` (ndata bytes).
static void craft(const char *path, int major, const char *dict, const void *data, size_t ndata) {
  size_t h = strlen(dict), lenb = major == 1 ? 2 : 4, n = 8 + lenb + h + ndata;
  unsigned char *b = malloc(n);
  CHECK(b != NULL);
  if (!b) return;
  memcpy(b, "\x93NUMPY", 6);
  b[6] = (unsigned char)major;
  b[7] = 0;
  for (size_t i = 0; i < lenb; i++) b[8 + i] = (unsigned char)(h >> (8 * i));
  memcpy(b + 8 + lenb, dict, h);
  if (ndata) memcpy(b + 8 + lenb + h, data, ndata);
  CHECK(write_bytes(path, b, n) == 0);
  free(b);
}

static void expect_error(const char *path, const char *what, const char *label) {
  int32_t *d = (int32_t *)1;
  int ndim = 7;
  int64_t shape[3];
  vqgpt_clear_error();
  int rc = vqgpt_npy_read_i32(path, &d, &ndim, shape);
  const char *e = vqgpt_last_error();
  CHECKF(rc == -1, "%s: accepted", label);
  if (rc == 0) {
    free(d);
    return;
  }
  char prefix[300];
  snprintf(prefix, sizeof prefix, "%s: ", path);
  CHECKF(strncmp(e, prefix, strlen(prefix)) == 0, "%s: error does not start with the path: %s",
         label, e);
  CHECKF(strstr(e, what) != NULL, "%s: error '%s' lacks '%s'", label, e, what);
  CHECKF(strchr(e, '\n') == NULL, "%s: error spans lines", label);
  CHECKF(d == NULL && ndim == 0, "%s: outputs not reset", label);
}

static void hostile(int major, const char *dict, const void *data, size_t ndata, const char *what) {
  pathbuf p = tmp_path("bad.npy");
  craft(p.s, major, dict, data, ndata);
  expect_error(p.s, what, dict);
  unlink(p.s);
}

static void test_exact_bytes(void) {
  // numpy 1.24's np.save(f, np.arange(6, dtype='<i4').reshape(2, 3)): 128-byte header.
  const char *dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }";
  unsigned char want[128 + 24];
  memcpy(want, "\x93NUMPY\x01\x00\x76\x00", 10);
  memset(want + 10, ' ', 117);
  memcpy(want + 10, dict, strlen(dict));
  want[127] = '\n';
  int32_t v[6] = {0, 1, 2, 3, 4, 5};
  memcpy(want + 128, v, sizeof v);
  pathbuf p = tmp_path("exact.npy");
  int64_t shape[2] = {2, 3};
  CHECKF(vqgpt_npy_write_i32(p.s, v, 2, shape) == 0, "%s", vqgpt_last_error());
  size_t n;
  unsigned char *got = read_all(p.s, &n);
  CHECKF(got && n == sizeof want && memcmp(got, want, n) == 0,
         "bytes differ from numpy's (size %zu)", n);
  free(got);

  // 1-D: the shape is a 1-tuple "(5,)"; the header still ends on a 64-byte boundary.
  int64_t s1[1] = {5};
  CHECK(vqgpt_npy_write_i32(p.s, v, 1, s1) == 0);
  got = read_all(p.s, &n);
  CHECK(got && n == 128 + 20 && memcmp(got + 10 + 41, "'shape': (5,), }", 16) == 0 &&
        got[127] == '\n');
  free(got);
  unlink(p.s);
}

static void test_round_trip(void) {
  pathbuf p = tmp_path("codes.npy");
  int32_t v[2 * 3 * 4];
  for (int i = 0; i < 24; i++) v[i] = (i * 37) % 1024 - (i == 5 ? 2000000000 : 0);
  int64_t shapes[3][3] = {{24, 0, 0}, {4, 6, 0}, {2, 3, 4}};
  for (int nd = 1; nd <= 3; nd++) {
    CHECKF(vqgpt_npy_write_i32(p.s, v, nd, shapes[nd - 1]) == 0, "%s", vqgpt_last_error());
    int32_t *d = NULL;
    int ndim = 0;
    int64_t shape[3] = {-1, -1, -1};
    CHECKF(vqgpt_npy_read_i32(p.s, &d, &ndim, shape) == 0, "%s", vqgpt_last_error());
    CHECK(ndim == nd && d && memcmp(d, v, sizeof v) == 0);
    for (int i = 0; i < 3; i++) CHECK(shape[i] == (i < nd ? shapes[nd - 1][i] : 0));
    free(d);
  }
  // Empty arrays round-trip with a non-NULL buffer.
  int64_t empty[2] = {0, 7};
  CHECK(vqgpt_npy_write_i32(p.s, NULL, 2, empty) == 0);
  int32_t *d = NULL;
  int ndim = 0;
  int64_t shape[3];
  CHECK(vqgpt_npy_read_i32(p.s, &d, &ndim, shape) == 0 && d != NULL && ndim == 2 && shape[0] == 0 &&
        shape[1] == 7);
  free(d);

  // Writer refusals.
  int64_t bad4[4] = {1, 1, 1, 1}, neg[2] = {2, -3}, huge[3] = {INT64_MAX, INT64_MAX, 2};
  CHECK(vqgpt_npy_write_i32(p.s, v, 4, bad4) == -1 && strstr(vqgpt_last_error(), "4 dims"));
  CHECK(vqgpt_npy_write_i32(p.s, v, 0, bad4) == -1);
  CHECK(vqgpt_npy_write_i32(p.s, v, 2, neg) == -1 && strstr(vqgpt_last_error(), "negative"));
  CHECK(vqgpt_npy_write_i32(p.s, v, 3, huge) == -1 && strstr(vqgpt_last_error(), p.s));
  CHECK(vqgpt_npy_write_i32(p.s, NULL, 2, shapes[1]) == -1);
  unlink(p.s);

  // Failed writes leave the old file and no temporary.
  char missing[300];
  snprintf(missing, sizeof missing, "%s/nope/x.npy", tmpdir);
  CHECK(vqgpt_npy_write_i32(missing, v, 2, shapes[1]) == -1);
  char want[400];
  snprintf(want, sizeof want, "%s: cannot write: %s", missing, strerror(ENOENT));
  CHECKF(strcmp(vqgpt_last_error(), want) == 0, "got %s", vqgpt_last_error());
  pathbuf dir = tmp_path("occupied.npy"), inner = tmp_path("occupied.npy/keep");
  CHECK(mkdir(dir.s, 0700) == 0 && write_bytes(inner.s, "k", 1) == 0);
  CHECK(vqgpt_npy_write_i32(dir.s, v, 2, shapes[1]) == -1 &&
        strstr(vqgpt_last_error(), "cannot write"));
  struct stat sb;
  CHECK(stat(inner.s, &sb) == 0);
  unlink(inner.s);
  rmdir(dir.s);
  DIR *dd = opendir(tmpdir);
  int left = 0;
  struct dirent *de;
  while (dd && (de = readdir(dd)))
    if (de->d_name[0] != '.') left++, fprintf(stderr, "left behind: %s\n", de->d_name);
  if (dd) closedir(dd);
  CHECK(left == 0);
}

// Header forms numpy has written over the years, all of which must read.
static void test_header_variants(void) {
  int32_t v4[6] = {1, -2, 3, -4, 5, 2147483647};
  int64_t v8[6] = {1, -2, 3, -4, 5, -2147483648LL};
  struct {
    int major;
    const char *dict;
    int wide;
  } ok[] = {
      {1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }          \n", 0},
      {1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }\n", 1},
      {2, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }\n", 0},
      {3, "{'descr': '<i8', 'fortran_order': False, 'shape': (6,), }\n", 1},
      {1, "{'shape': (2L, 3L), 'fortran_order': False, 'descr': '<i4'}\n", 0},  // Python 2
      {1, "{\"descr\":\"<i4\",\"fortran_order\":False,\"shape\":(2,3,)}", 0},
      {1, "{ 'descr' : '<i4' ,\t'fortran_order' : False , 'shape' : ( 1 , 2 , 3 ) , }  \r\n", 0},
  };
  pathbuf p = tmp_path("v.npy");
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    craft(p.s, ok[i].major, ok[i].dict, ok[i].wide ? (const void *)v8 : (const void *)v4,
          ok[i].wide ? sizeof v8 : sizeof v4);
    int32_t *d = NULL;
    int ndim = 0;
    int64_t shape[3];
    int rc = vqgpt_npy_read_i32(p.s, &d, &ndim, shape);
    CHECKF(rc == 0, "variant %zu: %s", i, vqgpt_last_error());
    if (rc) continue;
    int64_t numel = 1;
    for (int k = 0; k < ndim; k++) numel *= shape[k];
    CHECKF(numel == 6, "variant %zu: %lld elements", i, (long long)numel);
    CHECK(d[1] == -2 && d[4] == 5 && d[5] == (ok[i].wide ? INT32_MIN : INT32_MAX));
    free(d);
  }
  // Trailing bytes after the array are tolerated (np.save can append arrays to one stream).
  int32_t more[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  craft(p.s, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }\n", more, sizeof more);
  int32_t *d = NULL;
  int ndim;
  int64_t shape[3];
  CHECK(vqgpt_npy_read_i32(p.s, &d, &ndim, shape) == 0 && d && d[5] == 6);
  free(d);
  unlink(p.s);
}

static void test_hostile(void) {
  pathbuf p = tmp_path("h.npy");
  int32_t v[6] = {0};
  const char *good = "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }\n";

  // A valid file truncated at several points.
  craft(p.s, 1, good, v, sizeof v);
  size_t n;
  unsigned char *raw = read_all(p.s, &n);
  CHECK(raw && n == 10 + strlen(good) + 24);
  struct {
    size_t len;
    const char *what;
  } cuts[] = {{0, "truncated"},
              {3, "truncated"},
              {8, "truncated"},
              {9, "truncated"},
              {10, "truncated: header"},
              {40, "truncated: header needs"},
              {n - 24, "truncated: shape (2, 3) needs 24 data bytes, file has 0"},
              {n - 1, "file has 23"}};
  for (size_t i = 0; raw && i < sizeof cuts / sizeof cuts[0]; i++) {
    CHECK(write_bytes(p.s, raw, cuts[i].len) == 0);
    char label[40];
    snprintf(label, sizeof label, "truncated at %zu", cuts[i].len);
    expect_error(p.s, cuts[i].what, label);
  }
  // Bad magic, including a NumPy magic of the wrong case and a safetensors file.
  if (raw) {
    raw[1] = 'n';
    CHECK(write_bytes(p.s, raw, n) == 0);
    expect_error(p.s, "not a .npy file (bad magic)", "bad magic");
    CHECK(write_bytes(p.s, "PK\x03\x04", 4) == 0);
    expect_error(p.s, "bad magic", "zip magic");
    CHECK(write_bytes(p.s, "\x08\0\0\0\0\0\0\0{}      ", 16) == 0);
    expect_error(p.s, "bad magic", "safetensors");
    free(raw);
  }
  unlink(p.s);
  pathbuf missing = tmp_path("missing.npy");
  expect_error(missing.s, "cannot open", "missing file");
  expect_error(tmpdir, "not a regular file", "directory");

  hostile(4, good, v, sizeof v, "unsupported .npy format version 4.0");
  hostile(0, good, v, sizeof v, "version 0.0");
  // Malformed header dicts.
  hostile(1, "", v, 0, "malformed header ('{' expected");
  hostile(1, "descr", v, 24, "malformed header");
  hostile(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), ", v, 24,
          "malformed header");
  hostile(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3)} x", v, 24,
          "trailing characters");
  hostile(1, "{'descr': '<i4' 'fortran_order': False, 'shape': (2, 3)}", v, 24,
          "',' or '}' expected");
  hostile(1, "{'descr' '<i4', 'fortran_order': False, 'shape': (2, 3)}", v, 24, "':' expected");
  hostile(1, "{'descr': '<i4, 'fortran_order': False, 'shape': (2, 3)}", v, 24, "malformed header");
  hostile(1, "{'descr': '<i4', 'fortran_order': false, 'shape': (2, 3)}", v, 24,
          "True or False expected");
  hostile(1, "{'descr': '<i4', 'fortran_order': False, 'shape': [2, 3]}", v, 24,
          "shape tuple expected");
  hostile(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (6)}", v, 24,
          "shape is not a tuple");
  hostile(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2 3)}", v, 24,
          "',' expected in shape");
  hostile(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, -3)}", v, 24,
          "non-negative integer expected");
  hostile(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3.0)}", v, 24,
          "malformed header");
  hostile(1, "{'descr': '<i4', 'fortran_order': False}", v, 24, "missing key 'shape'");
  hostile(1, "{'descr': '<i4', 'shape': (2, 3)}", v, 24, "missing key 'fortran_order'");
  hostile(1, "{'fortran_order': False, 'shape': (2, 3)}", v, 24, "missing key 'descr'");
  hostile(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", v, 24,
          "unexpected key 'x'");
  hostile(1, "{'descr': '<i4', 'descr': '<i4', 'fortran_order': False, 'shape': (2, 3)}", v, 24,
          "key 'descr' appears twice");
  hostile(1, "{'descr': '\\x3ci4', 'fortran_order': False, 'shape': (2, 3)}", v, 24,
          "escape in string");
  // Unsupported arrays.
  hostile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", v, 24,
          "unsupported dtype '<f4'");
  hostile(1, "{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }", v, 24,
          "unsupported dtype '<i2'");
  hostile(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }", v, 24,
          "unsupported dtype");
  hostile(1, "{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (2, 3), }", v, 24,
          "malformed header");
  hostile(1, "{'descr': '>i4', 'fortran_order': False, 'shape': (2, 3), }", v, 24,
          "big-endian dtype '>i4'");
  hostile(1, "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }", v, 24,
          "fortran_order True");
  hostile(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (), }", v, 24, "0-dimensional");
  hostile(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 1, 2, 3), }", v, 24, "4 dims");
  // Shapes that overflow or exceed the file.
  hostile(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (99999999999999999999, 2), }", v,
          24, "dimension too large");
  hostile(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }", v,
          24, "larger than any file");
  hostile(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2305843009213693952, 2), }", v, 24,
          "truncated");
  hostile(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (1000000, 1000000), }", v, 24,
          "needs 4000000000000 data bytes, file has 24");
  // Header length field past the file or absurd.
  pathbuf q = tmp_path("len.npy");
  CHECK(write_bytes(q.s, "\x93NUMPY\x01\x00\xff\xff{}", 12) == 0);
  expect_error(q.s, "truncated: header needs 65545 bytes, file has 12", "v1 header past end");
  CHECK(write_bytes(q.s, "\x93NUMPY\x02\x00\xff\xff\xff\xff{}", 14) == 0);
  expect_error(q.s, "absurdly large", "v2 header absurd");
  unlink(q.s);
  // '<i8' values outside int32.
  int64_t big[2] = {5, 2147483648LL};
  hostile(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", big, sizeof big,
          "value 2147483648 at index 1 is outside the int32 range");
  big[1] = -2147483649LL;
  hostile(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }", big, sizeof big,
          "-2147483649");
  // Non-printable bytes from the file do not break the one-line error.
  hostile(1, "{'descr': '<\n\x01', 'fortran_order': False, 'shape': (2,), }", v, 8,
          "unsupported dtype '<?\?'");
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/vqgpt_npy_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  test_exact_bytes();
  test_round_trip();
  test_header_variants();
  test_hostile();
  CHECKF(rmdir(tmpdir) == 0, "temporary directory not empty: %s", strerror(errno));
  return test_finish("test_npy");
}
