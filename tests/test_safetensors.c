// safetensors: writer/reader round trips, exact half-float conversion, the reference fixtures,
// and a matrix of hostile files crafted here, each of which must fail with a message naming
// the path and the problem.
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/atomic_file.h"
#include "core/blas.h"
#include "core/error.h"
#include "test_util.h"
#include "weights/json.h"
#include "weights/safetensors.h"

// A file of: 8-byte length `hlen`, the header text, then `ndata` bytes 0, 1, 2, ...
static void craft(const char *path, uint64_t hlen, const char *header, size_t ndata) {
  size_t h = strlen(header), n = 8 + h + ndata;
  unsigned char *b = malloc(n);
  CHECK(b != NULL);
  if (!b) return;
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen >> (8 * i));
  memcpy(b + 8, header, h);
  for (size_t i = 0; i < ndata; i++) b[8 + h + i] = (unsigned char)i;
  CHECK(write_bytes(path, b, n) == 0);
  free(b);
}

// vqgpt_st_open must fail with "<path>: ..." containing `what`, on one line, leaving f empty.
static void expect_open_error(const char *path, const char *what, const char *label) {
  st_file f;
  memset(&f, 0x5a, sizeof f);  // garbage: vqgpt_st_open must reset it
  vqgpt_clear_error();
  int rc = vqgpt_st_open(&f, path);
  const char *e = vqgpt_last_error();
  CHECKF(rc == -1, "%s: accepted", label);
  if (rc == 0) {
    vqgpt_st_close(&f);
    return;
  }
  char prefix[300];
  snprintf(prefix, sizeof prefix, "%s: ", path);
  CHECKF(strncmp(e, prefix, strlen(prefix)) == 0, "%s: error does not start with the path: %s",
         label, e);
  CHECKF(strstr(e, what) != NULL, "%s: error '%s' lacks '%s'", label, e, what);
  CHECKF(strchr(e, '\n') == NULL, "%s: error spans lines: %s", label, e);
  CHECKF(f.map == NULL && f.tensors == NULL && f.n_tensors == 0 && f.path == NULL && f.n_meta == 0,
         "%s: st_file not left empty", label);
  vqgpt_st_close(&f);  // harmless on an empty file
}

// One header, with enough data bytes for offsets up to `ndata`.
static void hostile(const char *header, size_t ndata, const char *what) {
  pathbuf p_buf = tmp_path("bad.safetensors");
  const char *p = p_buf.s;
  craft(p, strlen(header), header, ndata);
  expect_open_error(p, what, header);
  unlink(p);
}

static void test_round_trip(void) {
  pathbuf p_buf = tmp_path("rt.safetensors");
  const char *p = p_buf.s;
  float a[6] = {1.5f, -2.0f, 0.0f, 3.25f, -0.0f, 1e-30f};
  uint16_t h[4] = {0x3C00, 0xC000, 0x7C00, 0x0001};  // 1, -2, inf, smallest subnormal
  uint16_t bf[3] = {0x3F80, 0xC0A0, 0xFF80};         // 1, -5, -inf
  int32_t iv[3] = {-7, 0, 2147483647};
  int64_t lv[2] = {-2147483648LL, 12345};
  uint8_t u[5] = {0, 1, 2, 254, 255};
  double dv[2] = {0.1, -1e300};
  float scalar = 42.0f;
  int64_t sa[2] = {2, 3}, sh[1] = {4}, sb[1] = {3}, si[2] = {3, 1}, sl[1] = {2}, su[1] = {5},
          sd[1] = {2}, se[2] = {0, 7};
  st_writer *w = vqgpt_st_writer_new();
  CHECK(w != NULL);
  CHECK(vqgpt_st_writer_meta(w, "format", "test") == 0);
  CHECK(vqgpt_st_writer_meta(w, "config", "{\"a\": \"q\\\"uote\"}\n\ttab \xc3\xa9") == 0);
  CHECK(vqgpt_st_writer_meta(w, "format", "test-v2") == 0);  // replaces
  CHECK(vqgpt_st_writer_add(w, "a.weight", ST_F32, 2, sa, a) == 0);
  CHECK(vqgpt_st_writer_add(w, "half", ST_F16, 1, sh, h) == 0);
  CHECK(vqgpt_st_writer_add(w, "brain", ST_BF16, 1, sb, bf) == 0);
  CHECK(vqgpt_st_writer_add(w, "ints", ST_I32, 2, si, iv) == 0);
  CHECK(vqgpt_st_writer_add(w, "longs", ST_I64, 1, sl, lv) == 0);
  CHECK(vqgpt_st_writer_add(w, "bytes", ST_U8, 1, su, u) == 0);
  CHECK(vqgpt_st_writer_add(w, "doubles", ST_F64, 1, sd, dv) == 0);
  CHECK(vqgpt_st_writer_add(w, "scalar", ST_F32, 0, NULL, &scalar) == 0);
  CHECK(vqgpt_st_writer_add(w, "empty", ST_F32, 2, se, NULL) == 0);
  CHECK(vqgpt_st_writer_add(w, "we\"ird\\name\x01", ST_F32, 0, NULL, &scalar) == 0);
  // Writer-side refusals.
  CHECK(vqgpt_st_writer_add(w, "a.weight", ST_F32, 2, sa, a) == -1 &&
        strstr(vqgpt_last_error(), "duplicate"));
  CHECK(vqgpt_st_writer_add(w, "__metadata__", ST_F32, 0, NULL, &scalar) == -1);
  CHECK(vqgpt_st_writer_add(w, "bad\xff", ST_F32, 0, NULL, &scalar) == -1 &&
        strstr(vqgpt_last_error(), "UTF-8"));
  int64_t neg[1] = {-1}, huge[3] = {INT64_MAX, INT64_MAX, 2};
  CHECK(vqgpt_st_writer_add(w, "neg", ST_F32, 1, neg, a) == -1);
  CHECK(vqgpt_st_writer_add(w, "huge", ST_F32, 3, huge, a) == -1);
  CHECK(vqgpt_st_writer_add(w, "nodata", ST_F32, 1, sh, NULL) == -1);
  CHECK(vqgpt_st_writer_add(w, "dims", ST_F32, 9, huge, a) == -1);
  CHECK(vqgpt_st_writer_add(w, "dtype", (st_dtype)99, 1, sh, a) == -1);
  CHECK(vqgpt_st_writer_meta(w, "k", NULL) == -1);
  CHECK(vqgpt_st_writer_save(w, p) == 0);
  vqgpt_st_writer_free(w);

  // The header is padded with spaces to a multiple of 8 and the data follows contiguously.
  size_t n;
  unsigned char *raw = read_all(p, &n);
  CHECK(raw != NULL && n >= 8);
  if (raw) {
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | raw[i];
    CHECKF(hl % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)hl);
    size_t data = 24 + 8 + 6 + 12 + 16 + 5 + 16 + 4 + 0 + 4;
    CHECKF(n == 8 + hl + data, "file size %zu, expected %zu", n, (size_t)(8 + hl + data));
    CHECK(raw[8] == '{');
    json_value *hdr = vqgpt_json_parse((const char *)raw + 8, (size_t)hl);
    CHECK(hdr != NULL);
    vqgpt_json_free(hdr);
    free(raw);
  }

  st_file f;
  CHECKF(vqgpt_st_open(&f, p) == 0, "%s", vqgpt_last_error());
  CHECK(f.n_tensors == 10 && f.n_meta == 2);
  CHECK(strcmp(f.tensors[0].name, "a.weight") == 0);  // header order
  CHECK(vqgpt_st_meta(&f, "format") && strcmp(vqgpt_st_meta(&f, "format"), "test-v2") == 0);
  CHECK(vqgpt_st_meta(&f, "config") &&
        strcmp(vqgpt_st_meta(&f, "config"), "{\"a\": \"q\\\"uote\"}\n\ttab \xc3\xa9") == 0);
  CHECK(vqgpt_st_meta(&f, "nope") == NULL);
  float out[8];
  CHECK(vqgpt_st_read_f32(&f, "a.weight", out, 2, sa) == 0 && memcmp(out, a, sizeof a) == 0);
  CHECK(signbit(out[4]));
  CHECK(vqgpt_st_read_f32(&f, "half", out, 1, sh) == 0);
  CHECK(out[0] == 1.0f && out[1] == -2.0f && isinf(out[2]) && out[2] > 0 &&
        out[3] == ldexpf(1, -24));
  CHECK(vqgpt_st_read_f32(&f, "brain", out, 1, sb) == 0 && out[0] == 1 && out[1] == -5 &&
        isinf(out[2]) && out[2] < 0);
  CHECK(vqgpt_st_read_f32(&f, "doubles", out, 1, sd) == 0 && out[0] == 0.1f && isinf(out[1]) &&
        out[1] < 0);
  CHECK(vqgpt_st_read_f32(&f, "scalar", out, 1, NULL) == 0 &&
        vqgpt_st_read_f32(&f, "scalar", out, 0, NULL) == -1);
  CHECK(vqgpt_st_read_f32(&f, "scalar", out, 0, sa) == 0 && out[0] == 42.0f);
  CHECK(vqgpt_st_read_f32(&f, "we\"ird\\name\x01", out, 0, sa) == 0 && out[0] == 42.0f);
  CHECK(vqgpt_st_read_f32(&f, "empty", out, 2, se) == 0);
  const st_tensor *t = vqgpt_st_find(&f, "empty");
  CHECK(t && t->numel == 0 && t->nbytes == 0 && t->ndim == 2 && t->shape[1] == 7);
  t = vqgpt_st_find(&f, "bytes");
  CHECK(t && t->dtype == ST_U8 && t->nbytes == 5 && memcmp(t->data, u, 5) == 0);
  CHECK(vqgpt_st_dtype_size(ST_BF16) == 2 && vqgpt_st_dtype_size(ST_I64) == 8 &&
        strcmp(vqgpt_st_dtype_name(ST_BOOL), "BOOL") == 0);
  CHECK(vqgpt_st_dtype_size((st_dtype)99) == 0);

  int32_t io[3];
  CHECK(vqgpt_st_read_i32(&f, "ints", io, 2, si) == 0 && memcmp(io, iv, sizeof iv) == 0);
  CHECK(vqgpt_st_read_i32(&f, "ints", io, 3, NULL) == 0 && io[2] == 2147483647);
  CHECK(vqgpt_st_read_i32(&f, "longs", io, 1, sl) == 0 && io[0] == INT32_MIN && io[1] == 12345);
  CHECK(vqgpt_st_read_i32(&f, "ints", io, 4, NULL) == -1 &&
        strstr(vqgpt_last_error(), "expected 4 elements"));

  // Lookup errors name the path, the tensor and both shapes.
  char want[512];
  int64_t wrong[2] = {3, 2};
  CHECK(vqgpt_st_read_f32(&f, "a.weight", out, 2, wrong) == -1);
  snprintf(want, sizeof want, "%s: tensor 'a.weight' has shape [2, 3], expected [3, 2]", p);
  CHECKF(strcmp(vqgpt_last_error(), want) == 0, "got '%s'", vqgpt_last_error());
  CHECK(vqgpt_st_read_f32(&f, "a.weight", out, 1, wrong) == -1 &&
        strstr(vqgpt_last_error(), "expected [3]"));
  CHECK(vqgpt_st_read_f32(&f, "x", out, 1, sh) == -1);
  snprintf(want, sizeof want, "%s: missing tensor 'x'", p);
  CHECKF(strcmp(vqgpt_last_error(), want) == 0, "got '%s'", vqgpt_last_error());
  CHECK(vqgpt_st_read_i32(&f, "x", io, 1, sh) == -1 &&
        strstr(vqgpt_last_error(), "missing tensor 'x'"));
  CHECK(vqgpt_st_read_f32(&f, "ints", out, 2, si) == -1 &&
        strstr(vqgpt_last_error(), "dtype I32") && strstr(vqgpt_last_error(), p));
  CHECK(vqgpt_st_read_i32(&f, "a.weight", io, 2, sa) == -1 &&
        strstr(vqgpt_last_error(), "dtype F32"));
  CHECK(vqgpt_st_read_i32(&f, "bytes", io, 1, su) == -1 && strstr(vqgpt_last_error(), "dtype U8"));
  vqgpt_st_close(&f);
  vqgpt_st_close(&f);  // idempotent
  unlink(p);

  // I64 values outside int32 are refused, naming the value.
  int64_t big[2] = {1, 2147483648LL};
  w = vqgpt_st_writer_new();
  CHECK(vqgpt_st_writer_add(w, "big", ST_I64, 1, sl, big) == 0 && vqgpt_st_writer_save(w, p) == 0);
  vqgpt_st_writer_free(w);
  CHECK(vqgpt_st_open(&f, p) == 0);
  CHECK(vqgpt_st_read_i32(&f, "big", io, 1, sl) == -1 && strstr(vqgpt_last_error(), "2147483648") &&
        strstr(vqgpt_last_error(), "'big'"));
  vqgpt_st_close(&f);
  unlink(p);

  // A file with no tensors and no metadata is valid.
  w = vqgpt_st_writer_new();
  CHECK(vqgpt_st_writer_save(w, p) == 0);
  vqgpt_st_writer_free(w);
  CHECK(vqgpt_st_open(&f, p) == 0 && f.n_tensors == 0 && f.n_meta == 0);
  vqgpt_st_close(&f);
  unlink(p);
}

// Writing F32 as F16/BF16: every finite half survives the trip exactly, ties round to even,
// values past 65504 become inf, and only float tensors are converted.
static void test_store_floats_as(void) {
  pathbuf p_buf = tmp_path("store16.safetensors");
  const char *p = p_buf.s;
  float *halves = malloc(65536 * sizeof *halves), *back = malloc(65536 * sizeof *back);
  CHECK(halves && back);
  if (!halves || !back) {
    free(halves);
    free(back);
    return;
  }
  size_t n = 0;
  for (uint32_t i = 0; i < 65536; i++) {
    int e = (i >> 10) & 31, m = i & 1023;
    if (e == 31) continue;
    float v = e ? ldexpf((float)(1024 + m), e - 25) : ldexpf((float)m, -24);
    halves[n++] = (i >> 15) ? -v : v;
  }
  float ties[6] = {
      1.0f + ldexpf(1, -11), 1.0f + 3 * ldexpf(1, -11), 65520.0f, 70000.0f, ldexpf(1, -25),
      ldexpf(3, -26)};
  float ties_f16[6] = {1.0f, 1.0f + ldexpf(1, -9), INFINITY, INFINITY, 0.0f, ldexpf(1, -24)};
  float bf_in[3] = {1.0f + ldexpf(1, -8), 1.0f + 3 * ldexpf(1, -8), -2.5f};
  float bf_out[3] = {1.0f, 1.0f + ldexpf(1, -6), -2.5f};
  int32_t ints[2] = {7, -7};
  int64_t sn[1] = {(int64_t)n}, s6[1] = {6}, s3[1] = {3}, s2[1] = {2};
  st_writer *w = vqgpt_st_writer_new();
  vqgpt_st_writer_store_floats_as(w, ST_F16);
  CHECK(vqgpt_st_writer_add(w, "halves", ST_F32, 1, sn, halves) == 0 &&
        vqgpt_st_writer_add(w, "ties", ST_F32, 1, s6, ties) == 0 &&
        vqgpt_st_writer_add(w, "ints", ST_I32, 1, s2, ints) == 0 &&
        vqgpt_st_writer_save(w, p) == 0);
  vqgpt_st_writer_free(w);
  st_file f;
  float t6[6];
  int32_t i2[2];
  CHECK(vqgpt_st_open(&f, p) == 0);
  CHECK(vqgpt_st_find(&f, "halves") && vqgpt_st_find(&f, "halves")->dtype == ST_F16);
  CHECK(vqgpt_st_find(&f, "ints") && vqgpt_st_find(&f, "ints")->dtype == ST_I32);
  CHECK(vqgpt_st_read_f32(&f, "halves", back, 1, sn) == 0 &&
        memcmp(back, halves, n * sizeof *back) == 0);
  CHECK(vqgpt_st_read_f32(&f, "ties", t6, 1, s6) == 0 && memcmp(t6, ties_f16, sizeof t6) == 0);
  CHECK(vqgpt_st_read_i32(&f, "ints", i2, 1, s2) == 0 && i2[0] == 7 && i2[1] == -7);
  vqgpt_st_close(&f);
  w = vqgpt_st_writer_new();
  vqgpt_st_writer_store_floats_as(w, ST_BF16);
  CHECK(vqgpt_st_writer_add(w, "bf", ST_F32, 1, s3, bf_in) == 0 && vqgpt_st_writer_save(w, p) == 0);
  vqgpt_st_writer_free(w);
  float b3[3];
  CHECK(vqgpt_st_open(&f, p) == 0 && vqgpt_st_find(&f, "bf") &&
        vqgpt_st_find(&f, "bf")->dtype == ST_BF16);
  CHECK(vqgpt_st_read_f32(&f, "bf", b3, 1, s3) == 0 && memcmp(b3, bf_out, sizeof b3) == 0);
  vqgpt_st_close(&f);
  unlink(p);
  free(halves);
  free(back);
}

// Every half-precision bit pattern against a formula-based reference.
static void test_f16_exhaustive(void) {
  uint16_t *h = malloc(65536 * sizeof *h);
  float *out = malloc(65536 * sizeof *out);
  CHECK(h && out);
  if (!h || !out) {
    free(h);
    free(out);
    return;
  }
  for (uint32_t i = 0; i < 65536; i++) h[i] = (uint16_t)i;
  pathbuf p_buf = tmp_path("f16.safetensors");
  const char *p = p_buf.s;
  int64_t shape[1] = {65536};
  st_writer *w = vqgpt_st_writer_new();
  CHECK(vqgpt_st_writer_add(w, "all", ST_F16, 1, shape, h) == 0 && vqgpt_st_writer_save(w, p) == 0);
  vqgpt_st_writer_free(w);
  st_file f;
  CHECK(vqgpt_st_open(&f, p) == 0);
  CHECK(vqgpt_st_read_f32(&f, "all", out, 1, shape) == 0);
  int bad = 0;
  for (uint32_t i = 0; i < 65536; i++) {
    int sign = i >> 15, e = (i >> 10) & 31, m = i & 1023;
    float ref;
    if (e == 31)
      ref = m ? NAN : INFINITY;
    else if (e == 0)
      ref = ldexpf((float)m, -24);
    else
      ref = ldexpf((float)(1024 + m), e - 25);
    if (sign) ref = -ref;
    bool ok = isnan(ref) ? isnan(out[i]) && !!signbit(out[i]) == !!sign
                         : out[i] == ref && !!signbit(out[i]) == !!sign;
    if (!ok && bad++ < 5) fprintf(stderr, "f16 0x%04x -> %.9g, expected %.9g\n", i, out[i], ref);
  }
  CHECKF(bad == 0, "%d half values converted wrongly", bad);
  vqgpt_st_close(&f);
  unlink(p);
  free(h);
  free(out);
}

static void test_fixtures(void) {
  st_file f;
  const char *p = fixture_path("vqgan_tiny.safetensors");
  CHECKF(vqgpt_st_open(&f, p) == 0, "%s", vqgpt_last_error());
  CHECK(f.n_tensors == 183);
  CHECK(vqgpt_st_meta(&f, "format") && strcmp(vqgpt_st_meta(&f, "format"), "taming-vqgan") == 0);
  const char *cfg = vqgpt_st_meta(&f, "config");
  json_value *c = cfg ? vqgpt_json_parse(cfg, strlen(cfg)) : NULL;
  int64_t v = 0, mult[4];
  CHECK(c && vqgpt_json_get_int(c, "embed_dim", &v) && v == 16);
  CHECK(vqgpt_json_get_int(c, "n_embed", &v) && v == 64);
  const json_value *dd = vqgpt_json_get(c, "ddconfig");
  CHECK(vqgpt_json_get_int_array(dd, "ch_mult", mult, 4) == 3 && mult[0] == 1 && mult[2] == 2);
  bool dz = true;
  double drop = 1;
  CHECK(vqgpt_json_get_bool(dd, "double_z", &dz) && !dz &&
        vqgpt_json_get_number(dd, "dropout", &drop) && drop == 0);
  vqgpt_json_free(c);
  int64_t ws[4] = {64, 16, 3, 3}, es[2] = {64, 16};
  float *wt = malloc(64 * 16 * 9 * sizeof *wt), emb[64 * 16];
  CHECK(wt && vqgpt_st_read_f32(&f, "decoder.conv_in.weight", wt, 4, ws) == 0);
  CHECK(vqgpt_st_read_f32(&f, "quantize.embedding.weight", emb, 2, es) == 0);
  int finite = 1;
  double sum = 0;
  for (int i = 0; i < 64 * 16; i++) finite &= isfinite(emb[i]), sum += fabs(emb[i]);
  CHECK(finite && sum > 0);
  int64_t wrong[4] = {128, 16, 3, 3};
  CHECK(vqgpt_st_read_f32(&f, "decoder.conv_in.weight", wt, 4, wrong) == -1);
  char want[512];
  snprintf(want, sizeof want,
           "%s: tensor 'decoder.conv_in.weight' has shape [64, 16, 3, 3], expected [128, 16, 3, 3]",
           p);
  CHECKF(strcmp(vqgpt_last_error(), want) == 0, "got '%s'", vqgpt_last_error());
  free(wt);
  // Every tensor loads through the generic path.
  for (size_t i = 0; i < f.n_tensors; i++) {
    const st_tensor *t = &f.tensors[i];
    float *buf = malloc(t->numel * sizeof *buf + 1);
    CHECKF(buf && vqgpt_st_read_f32(&f, t->name, buf, t->ndim, t->shape) == 0, "%s", t->name);
    free(buf);
  }
  vqgpt_st_close(&f);

  // F16 weights: compare the conversion with the raw bits decoded by formula.
  CHECKF(vqgpt_st_open(&f, fixture_path("lpips_rand.safetensors")) == 0, "%s", vqgpt_last_error());
  const st_tensor *t = vqgpt_st_find(&f, "net.slice1.0.weight");
  CHECK(t && t->dtype == ST_F16 && t->ndim == 4 && t->shape[0] == 64 && t->shape[1] == 3);
  if (t) {
    float *w = malloc(t->numel * sizeof *w);
    CHECK(w && vqgpt_st_read_f32(&f, t->name, w, t->ndim, t->shape) == 0);
    int bad = 0, nonzero = 0;
    for (size_t i = 0; w && i < t->numel; i++) {
      unsigned bits = t->data[2 * i] | t->data[2 * i + 1] << 8;
      int e = (bits >> 10) & 31, m = bits & 1023;
      float ref = e ? ldexpf((float)(1024 + m), e - 25) : ldexpf((float)m, -24);
      if (bits >> 15) ref = -ref;
      bad += e == 31 || w[i] != ref;
      nonzero += w[i] != 0;
    }
    CHECK(bad == 0 && nonzero > 0);
    free(w);
  }
  float shift[3];
  int64_t ss[4] = {1, 3, 1, 1};
  CHECK(vqgpt_st_read_f32(&f, "scaling_layer.shift", shift, 4, ss) == 0 &&
        fabsf(shift[0] + 0.030f) < 1e-3f);
  vqgpt_st_close(&f);

  // I32 token ids.
  CHECKF(vqgpt_st_open(&f, fixture_path("gpt_tiny_io.safetensors")) == 0, "%s", vqgpt_last_error());
  int32_t idx[2 * 33];
  int64_t is[2] = {2, 33};
  CHECK(vqgpt_st_read_i32(&f, "idx", idx, 2, is) == 0);
  int inrange = 1;
  for (int i = 0; i < 66; i++) inrange &= idx[i] >= 0 && idx[i] < 80;
  CHECK(inrange);
  CHECK(vqgpt_st_read_i32(&f, "greedy", idx, 66, NULL) == 0);
  vqgpt_st_close(&f);

  // I64 buffers of the discriminator.
  CHECKF(vqgpt_st_open(&f, fixture_path("disc_tiny.safetensors")) == 0, "%s", vqgpt_last_error());
  CHECK(strcmp(vqgpt_st_meta(&f, "format"), "taming-patchgan") == 0);
  int found = 0;
  for (size_t i = 0; i < f.n_tensors; i++)
    if (f.tensors[i].dtype == ST_I64) {
      int32_t nb = -1;
      found++;
      CHECK(vqgpt_st_read_i32(&f, f.tensors[i].name, &nb, f.tensors[i].ndim, f.tensors[i].shape) ==
                0 &&
            nb >= 0);
    }
  CHECK(found == 2);
  vqgpt_st_close(&f);
}

static void test_hostile(void) {
  pathbuf p_buf = tmp_path("short.safetensors");
  const char *p = p_buf.s;
  for (size_t n = 0; n < 8; n += 3) {
    craft(p, 0, "", 0);
    CHECK(truncate(p, (off_t)n) == 0);
    expect_open_error(p, "too short", "short file");
  }
  unlink(p);
  pathbuf missing = tmp_path("does-not-exist");
  expect_open_error(missing.s, "cannot open", "missing file");
  expect_open_error(tmpdir, "not a regular file", "directory");

  // Header length past the end or absurd.
  pathbuf len_buf = tmp_path("len.safetensors");
  p = len_buf.s;
  craft(p, 1000, "{}", 0);
  expect_open_error(p, "past the end of the file", "header length past end");
  craft(p, 11, "{}", 0);
  expect_open_error(p, "past the end of the file", "header length one past end");
  craft(p, UINT64_MAX, "{}", 0);
  expect_open_error(p, "absurdly large", "header length 2^64-1");
  craft(p, (uint64_t)1 << 40, "{}", 0);
  expect_open_error(p, "absurdly large", "header length 2^40");
  unlink(p);

  // A valid file truncated at several points.
  float x[16] = {0};
  int64_t s16[1] = {16};
  pathbuf good_buf = tmp_path("good.safetensors");
  const char *good = good_buf.s;
  st_writer *w = vqgpt_st_writer_new();
  CHECK(vqgpt_st_writer_meta(w, "format", "t") == 0 &&
        vqgpt_st_writer_add(w, "x", ST_F32, 1, s16, x) == 0 &&
        vqgpt_st_writer_add(w, "y", ST_F32, 1, s16, x) == 0 && vqgpt_st_writer_save(w, good) == 0);
  vqgpt_st_writer_free(w);
  size_t n;
  unsigned char *raw = read_all(good, &n);
  CHECK(raw != NULL);
  if (raw) {
    size_t hl = n - 128 - 8;
    struct {
      size_t len;
      const char *what;
    } cuts[] = {{4, "too short"},
                {8, "past the end of the file"},
                {8 + hl / 2, "past the end of the file"},
                {8 + hl - 1, "past the end of the file"},
                {8 + hl, "past the end of the data section"},
                {8 + hl + 64, "tensor 'y'"},
                {n - 1, "past the end of the data section"}};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
      pathbuf cut = tmp_path("cut.safetensors");
      p = cut.s;
      CHECK(write_bytes(p, raw, cuts[i].len) == 0);
      char label[64];
      snprintf(label, sizeof label, "truncated at %zu", cuts[i].len);
      expect_open_error(p, cuts[i].what, label);
      unlink(p);
    }
    free(raw);
  }
  st_file f;
  CHECK(vqgpt_st_open(&f, good) == 0);
  vqgpt_st_close(&f);
  unlink(good);

  // The header itself.
  hostile("", 0, "header is not valid JSON");
  hostile("{\"a\":", 0, "header is not valid JSON");
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}", 4, "not valid JSON");
  hostile("{'a':1}", 0, "not valid JSON");
  hostile("\x01\x02\x03\x04", 0, "not valid JSON");
  hostile("[1,2]", 0, "header is not a JSON object");
  hostile("\"str\"", 0, "header is not a JSON object");
  hostile("{\"a\":5}", 0, "tensor 'a': entry is not an object");
  hostile("{\"a\":[]}", 0, "tensor 'a': entry is not an object");
  hostile("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
          "tensor 'a': missing or non-string dtype");
  hostile("{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
          "missing or non-string dtype");
  hostile("{\"a\":{\"dtype\":\"Q8\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
          "tensor 'a': unknown dtype 'Q8'");
  hostile("{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
          "unknown dtype 'f32'");
  hostile("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4,
          "tensor 'a': shape is missing or not an array");
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", 4,
          "shape is missing or not an array");
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
          "shape is not an array of non-negative integers");
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
          "non-negative integers");
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4,
          "non-negative integers");
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[1e30],\"data_offsets\":[0,4]}}", 4,
          "non-negative integers");
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
          "9 dims");
  // Huge shapes whose element or byte count overflows 64 bits.
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}",
          4, "too large");
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", 4,
          "too large");
  hostile("{\"a\":{\"dtype\":\"I64\",\"shape\":[2305843009213693952,2],\"data_offsets\":[0,0]}}", 4,
          "too large");
  // A product that wraps to exactly the byte count must still fail (2^62 * 4 == 0 mod 2^64).
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}", 4,
          "too large");
  // Offsets.
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor 'a': data_offsets is missing");
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4,
          "data_offsets is missing or not two");
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
          "not two non-negative integers");
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
          "not two non-negative integers");
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,\"4\"]}}", 4,
          "not two non-negative");
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0,4\"}}", 4,
          "not two non-negative");
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
          "[8, 4] begin after end");
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 7,
          "data_offsets [4, 8] past the end of the data section (7 bytes)");
  hostile(
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[18446744073709551612,"
      "18446744073709551616]}}",
      8, "not two non-negative integers");
  hostile(
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[9007199254740992,9007199254740996]"
      "}}",
      8, "past the end of the data section");
  // Byte count against shape and dtype.
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8,
          "tensor 'a': data_offsets span 4 bytes but F32 shape [2] needs 8");
  hostile("{\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16,
          "span 16 bytes but F16 shape [2, 2] needs 8");
  hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,4]}}", 8, "needs 0");
  // Overlaps, regardless of header order.
  hostile(
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
      12, "tensors 'a' [0, 8] and 'b' [4, 12] overlap");
  hostile(
      "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
      "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
      16, "overlap");
  hostile(
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
      8, "overlap");
  // Duplicate names.
  hostile(
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
      8, "duplicate key 'a'");
  // Metadata.
  hostile("{\"__metadata__\":\"x\"}", 0, "__metadata__ is not an object");
  hostile("{\"__metadata__\":[\"x\"]}", 0, "__metadata__ is not an object");
  hostile("{\"__metadata__\":{\"format\":\"x\",\"n\":1}}", 0,
          "__metadata__ value of 'n' is not a string");
  hostile("{\"__metadata__\":{\"k\":{\"a\":\"b\"}}}", 0, "value of 'k' is not a string");
  hostile("{\"__metadata__\":{\"k\":null}}", 0, "value of 'k' is not a string");
  hostile("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate key '__metadata__'");
  // A name with a control character (escaped in JSON) still gives a one-line error.
  hostile("{\"a\\nb\":{\"dtype\":\"Q8\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
          "tensor 'a?b': unknown dtype");

  // The tensors must cover the data section exactly: a gap at the start, between tensors, or
  // bytes after the last one (a header length one short: the JSON still parses, ending in
  // padding, and every tensor would be read one byte off) are errors.
  hostile("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", 8,
          "bytes [0, 4] of the data section belong to no tensor (a gap before 'a')");
  hostile(
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
      "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,8]}}",
      8, "bytes [4, 6] of the data section belong to no tensor (a gap between 'a' and 'b')");
  hostile("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 5,
          "1 trailing byte after the tensors' data");
  hostile("{}", 3, "3 trailing bytes");
  hostile("{\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 1,
          "1 trailing byte after");
  {
    // A header length one byte short of a good file's.
    const char *h = "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}   ";
    pathbuf short_buf = tmp_path("short_len.safetensors");
    craft(short_buf.s, strlen(h), h, 4);
    CHECKF(vqgpt_st_open(&f, short_buf.s) == 0, "%s", vqgpt_last_error());
    vqgpt_st_close(&f);
    craft(short_buf.s, strlen(h) - 1, h, 4);
    expect_open_error(short_buf.s, "1 trailing byte after", "header length one short");
    unlink(short_buf.s);
  }

  // Adjacent tensors in any header order, and empty ones at any offset, are fine.
  pathbuf ok_buf = tmp_path("ok.safetensors");
  p = ok_buf.s;
  const char *okh =
      "{\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
      "\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
      "\"b\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[5,7]},"
      "\"c\":{\"dtype\":\"I8\",\"shape\":[],\"data_offsets\":[4,5]}}  ";
  craft(p, strlen(okh), okh, 7);
  CHECKF(vqgpt_st_open(&f, p) == 0, "%s", vqgpt_last_error());
  CHECK(f.n_tensors == 4 && vqgpt_st_find(&f, "b") && vqgpt_st_find(&f, "b")->data[0] == 5);
  CHECK(vqgpt_st_find(&f, "c") && vqgpt_st_find(&f, "c")->ndim == 0 &&
        vqgpt_st_find(&f, "c")->numel == 1);
  vqgpt_st_close(&f);
  unlink(p);
}

// Loaders take every tensor (vqgpt_st_check_all_used), refuse non-finite weights
// (vqgpt_st_read_weights) and check the format.
static void test_used_finite_format(void) {
  pathbuf p_buf = tmp_path("used.safetensors");
  const char *p = p_buf.s;
  float a[3] = {1, 2, 3}, bad[3] = {1, NAN, 3}, inf[2] = {0, -INFINITY};
  int64_t s3[1] = {3}, s2[1] = {2};
  st_writer *w = vqgpt_st_writer_new();
  CHECK(vqgpt_st_writer_meta(w, "format", "taming-test") == 0 &&
        vqgpt_st_writer_add(w, "a", ST_F32, 1, s3, a) == 0 &&
        vqgpt_st_writer_add(w, "bad", ST_F32, 1, s3, bad) == 0 &&
        vqgpt_st_writer_add(w, "h.inf", ST_F16, 1, s2, NULL) == -1);
  uint16_t hinf[2] = {0x3C00, 0xFC00};  // 1, -inf as halves
  CHECK(vqgpt_st_writer_add(w, "h.inf", ST_F16, 1, s2, hinf) == 0 &&
        vqgpt_st_writer_add(w, "opt.m.x", ST_F32, 1, s2, inf) == 0 &&
        vqgpt_st_writer_add(w, "blocks.3.attn.mask", ST_F32, 1, s2, inf) == 0 &&
        vqgpt_st_writer_save(w, p) == 0);
  vqgpt_st_writer_free(w);
  st_file f;
  float out[3];
  CHECKF(vqgpt_st_open(&f, p) == 0, "%s", vqgpt_last_error());
  CHECK(vqgpt_st_check_format(&f, "taming-test", "a test") == 0);
  CHECK(vqgpt_st_check_format(&f, "taming-gpt", "a GPT") == -1 &&
        strstr(vqgpt_last_error(), "format is 'taming-test', not a GPT ('taming-gpt')"));
  CHECK(vqgpt_st_read_weights(&f, "a", out, 1, s3) == 0 && out[2] == 3);
  CHECK(vqgpt_st_read_weights(&f, "bad", out, 1, s3) == -1 &&
        strstr(vqgpt_last_error(), "tensor 'bad' holds a non-finite value (nan at index 1)"));
  CHECK(vqgpt_st_read_weights(&f, "h.inf", out, 1, s2) == -1 &&
        strstr(vqgpt_last_error(), "-inf at index 1"));
  CHECK(vqgpt_st_read_f32(&f, "h.inf", out, 1, s2) == 0 &&
        isinf(out[1]));  // the plain reader keeps them
  // Read so far: a, bad, h.inf. Unused: opt.m.x and the mask, accepted only by pattern.
  CHECK(vqgpt_st_check_all_used(&f, NULL) == -1 &&
        strstr(vqgpt_last_error(),
               "tensor 'opt.m.x' is not part of the model its config describes (2 such tensors)"));
  const char *const only_opt[] = {"opt.*", NULL};
  CHECK(vqgpt_st_check_all_used(&f, only_opt) == -1 &&
        strstr(vqgpt_last_error(), "'blocks.3.attn.mask'") &&
        strstr(vqgpt_last_error(), "(1 such tensor)"));
  const char *const both[] = {"opt.*", "blocks.*.attn.mask", NULL};
  CHECK(vqgpt_st_check_all_used(&f, both) == 0);
  const char *const near[] = {"opt.m", "blocks.*.attn", "*.mask.x", NULL};
  CHECK(vqgpt_st_check_all_used(&f, near) == -1);
  CHECK(vqgpt_st_mark_used(&f, "opt.m.x") && vqgpt_st_mark_used(&f, "blocks.3.attn.mask") &&
        !vqgpt_st_mark_used(&f, "nope"));
  CHECK(vqgpt_st_check_all_used(&f, NULL) == 0);
  vqgpt_st_close(&f);

  // No format at all.
  w = vqgpt_st_writer_new();
  CHECK(vqgpt_st_writer_add(w, "a", ST_F32, 1, s3, a) == 0 && vqgpt_st_writer_save(w, p) == 0);
  vqgpt_st_writer_free(w);
  CHECK(vqgpt_st_open(&f, p) == 0 && vqgpt_st_check_format(&f, "taming-vqgan", "a VQGAN") == -1 &&
        strstr(vqgpt_last_error(), "no 'format' in the metadata: not a VQGAN ('taming-vqgan')"));
  vqgpt_st_close(&f);
  unlink(p);
}

static void test_atomic_writes(void) {
  pathbuf p_buf = tmp_path("model.safetensors");
  const char *p = p_buf.s;
  float a[4] = {1, 2, 3, 4};
  int64_t s[1] = {4};
  st_writer *w = vqgpt_st_writer_new();
  CHECK(vqgpt_st_writer_add(w, "a", ST_F32, 1, s, a) == 0 && vqgpt_st_writer_save(w, p) == 0);
  // Overwrite in place: the old content is replaced whole.
  a[0] = 9;
  CHECK(vqgpt_st_writer_save(w, p) == 0);
  st_file f;
  float out[4];
  CHECK(vqgpt_st_open(&f, p) == 0 && vqgpt_st_read_f32(&f, "a", out, 1, s) == 0 && out[0] == 9);
  vqgpt_st_close(&f);

  // A target directory that does not exist.
  char bad[300];
  snprintf(bad, sizeof bad, "%s/no/such/dir/m.safetensors", tmpdir);
  CHECK(vqgpt_st_writer_save(w, bad) == -1);
  char want[400];
  snprintf(want, sizeof want, "%s: cannot write: %s", bad, strerror(ENOENT));
  CHECKF(strcmp(vqgpt_last_error(), want) == 0, "got '%s'", vqgpt_last_error());

  // The rename fails when the target is a non-empty directory: the temporary must go away
  // and the directory (the "old file") stays as it was.
  pathbuf d_buf = tmp_path("occupied");
  const char *d = d_buf.s;
  CHECK(mkdir(d, 0700) == 0);
  char inner[300];
  snprintf(inner, sizeof inner, "%s/keep", d);
  CHECK(write_bytes(inner, "k", 1) == 0);
  CHECK(vqgpt_st_writer_save(w, d) == -1 && strstr(vqgpt_last_error(), "cannot write"));
  struct stat sb;
  CHECK(stat(d, &sb) == 0 && S_ISDIR(sb.st_mode) && stat(inner, &sb) == 0);
  unlink(inner);
  rmdir(d);

  // Targets that exist and are not regular files are refused before anything is written:
  // a symbolic link (to a file that must stay untouched), a FIFO, a device.
  pathbuf keep_buf = tmp_path("keep.bin"), link_buf = tmp_path("link.safetensors"),
          fifo_buf = tmp_path("fifo.safetensors");
  CHECK(write_bytes(keep_buf.s, "keep", 4) == 0 && symlink(keep_buf.s, link_buf.s) == 0);
  CHECK(vqgpt_st_writer_save(w, link_buf.s) == -1 &&
        strstr(vqgpt_last_error(), "it exists and is a symbolic link, not a regular file"));
  CHECK(lstat(link_buf.s, &sb) == 0 && S_ISLNK(sb.st_mode) && stat(keep_buf.s, &sb) == 0 &&
        sb.st_size == 4);
  CHECK(mkfifo(fifo_buf.s, 0600) == 0);
  CHECK(vqgpt_st_writer_save(w, fifo_buf.s) == -1 && strstr(vqgpt_last_error(), "is a FIFO"));
  CHECK(lstat(fifo_buf.s, &sb) == 0 && S_ISFIFO(sb.st_mode));
  CHECK(vqgpt_atomic_file_check_target("/dev/null") == -1 &&
        strstr(vqgpt_last_error(), "character device"));
  CHECK(vqgpt_atomic_file_check_target(p) == 0 && vqgpt_atomic_file_check_target(bad) == 0);
  unlink(link_buf.s);
  unlink(fifo_buf.s);
  unlink(keep_buf.s);

  // Temporaries of killed runs ("<target>.tmp.<pid>", the process gone) are removed by the
  // next write of the same target; those of live processes, of other targets, and names
  // that only look alike stay.
  pid_t child = fork();
  if (child == 0) _exit(0);
  CHECK(child > 0 && waitpid(child, NULL, 0) == child);  // a pid that is surely dead now
  char stale[300], live[300], other[300], odd[300];
  snprintf(stale, sizeof stale, "%s.tmp.%ld", p, (long)child);
  snprintf(live, sizeof live, "%s.tmp.%ld", p, (long)getppid());
  snprintf(other, sizeof other, "%s/other.safetensors.tmp.%ld", tmpdir, (long)child);
  snprintf(odd, sizeof odd, "%s.tmp.%ldx", p, (long)child);
  CHECK(write_bytes(stale, "s", 1) == 0 && write_bytes(live, "l", 1) == 0 &&
        write_bytes(other, "o", 1) == 0 && write_bytes(odd, "x", 1) == 0);
  CHECK(vqgpt_st_writer_save(w, p) == 0);
  CHECK(access(stale, F_OK) != 0 && access(live, F_OK) == 0 && access(other, F_OK) == 0 &&
        access(odd, F_OK) == 0);
  CHECK(write_bytes(stale, "s", 1) == 0 && vqgpt_atomic_file_remove_stale(p) == 1 &&
        access(stale, F_OK) != 0);
  unlink(live);
  unlink(other);
  unlink(odd);
  vqgpt_st_writer_free(w);

  // Only the model file is left: no temporaries.
  DIR *dir = opendir(tmpdir);
  int others = 0;
  struct dirent *de;
  while (dir && (de = readdir(dir)))
    if (de->d_name[0] != '.' && strcmp(de->d_name, "model.safetensors") != 0) {
      fprintf(stderr, "left behind: %s\n", de->d_name);
      others++;
    }
  if (dir) closedir(dir);
  CHECK(others == 0);
  unlink(p);

  // NULL writer (as after a failed vqgpt_st_writer_new) is an error, not a crash.
  CHECK(vqgpt_st_writer_add(NULL, "a", ST_F32, 1, s, a) == -1);
  CHECK(vqgpt_st_writer_meta(NULL, "a", "b") == -1);
  CHECK(vqgpt_st_writer_save(NULL, p) == -1 && strstr(vqgpt_last_error(), p));
  vqgpt_st_writer_free(NULL);
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/vqgpt_st_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  test_round_trip();
  test_f16_exhaustive();
  test_store_floats_as();
  test_fixtures();
  test_hostile();
  test_used_finite_format();
  test_atomic_writes();
  CHECKF(rmdir(tmpdir) == 0, "temporary directory not empty: %s", strerror(errno));
  return test_finish("test_safetensors");
}
