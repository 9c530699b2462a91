// The strict JSON reader: RFC 8259 grammar, escapes to UTF-8, limits, typed lookups.
#include <string.h>

#include "core/blas.h"
#include "core/error.h"
#include "test_util.h"
#include "weights/json.h"

static json_value *parse(const char *s) { return vqgpt_json_parse(s, strlen(s)); }

// The document must be rejected with a message containing `what`.
static void reject(const char *doc, const char *what) {
  vqgpt_clear_error();
  json_value *v = parse(doc);
  CHECKF(v == NULL, "accepted invalid JSON: %s", doc);
  vqgpt_json_free(v);
  CHECKF(strstr(vqgpt_last_error(), what) && strstr(vqgpt_last_error(), "at byte"),
         "error for %s: '%s' lacks '%s'", doc, vqgpt_last_error(), what);
}

static void accept(const char *doc) {
  json_value *v = parse(doc);
  CHECKF(v != NULL, "rejected valid JSON %s: %s", doc, vqgpt_last_error());
  vqgpt_json_free(v);
}

// A string literal's decoded bytes.
static void check_string(const char *doc, const char *expect) {
  json_value *v = parse(doc);
  CHECKF(v && v->type == JSON_STRING && strcmp(v->string, expect) == 0, "%s decoded wrongly", doc);
  vqgpt_json_free(v);
}

static void test_values(void) {
  json_value *v = parse(
      " { \"a\" : [1, -2.5e2, 0, true, false, null, \"x\"], \"b\": {\"c\": {}},"
      " \"n\": 9007199254740992, \"f\": 0.5, \"big\": 1e300 }\r\n");
  CHECK(v && v->type == JSON_OBJECT && v->count == 5);
  if (!v) return;
  const json_value *a = vqgpt_json_get(v, "a");
  CHECK(a && a->type == JSON_ARRAY && a->count == 7);
  CHECK(vqgpt_json_at(a, 0)->type == JSON_NUMBER && vqgpt_json_at(a, 0)->number == 1);
  CHECK(vqgpt_json_at(a, 1)->number == -250);
  CHECK(vqgpt_json_at(a, 3)->type == JSON_BOOL && vqgpt_json_at(a, 3)->boolean);
  CHECK(vqgpt_json_at(a, 4)->type == JSON_BOOL && !vqgpt_json_at(a, 4)->boolean);
  CHECK(vqgpt_json_at(a, 5)->type == JSON_NULL);
  CHECK(vqgpt_json_at(a, 6)->type == JSON_STRING && strcmp(vqgpt_json_at(a, 6)->string, "x") == 0);
  CHECK(vqgpt_json_at(a, 7) == NULL);
  CHECK(vqgpt_json_at(v, 0) == NULL);  // not an array
  const json_value *c = vqgpt_json_get(vqgpt_json_get(v, "b"), "c");
  CHECK(c && c->type == JSON_OBJECT && c->count == 0);
  CHECK(vqgpt_json_get(v, "missing") == NULL && vqgpt_json_get(a, "a") == NULL &&
        vqgpt_json_get(NULL, "a") == NULL);

  int64_t i = -1;
  double d = 0;
  bool b = false;
  CHECK(vqgpt_json_get_int(v, "n", &i) && i == 9007199254740992LL);
  CHECK(!vqgpt_json_get_int(v, "f", &i) && i == 9007199254740992LL);  // not whole: untouched
  CHECK(!vqgpt_json_get_int(v, "big", &i));                           // beyond int64
  CHECK(!vqgpt_json_get_int(v, "a", &i) && !vqgpt_json_get_int(v, "nope", &i));
  CHECK(vqgpt_json_get_number(v, "f", &d) && d == 0.5);
  CHECK(!vqgpt_json_get_number(v, "b", &d));
  CHECK(!vqgpt_json_get_bool(v, "f", &b));
  CHECK(vqgpt_json_get_string(v, "a") == NULL);
  vqgpt_json_free(v);

  v = parse(
      "{\"s\":\"hi\",\"t\":true,\"dims\":[3,4,5],\"mixed\":[1,2.5],\"neg\":-9223372036854775808,"
      "\"over\":9223372036854775807}");
  CHECK(v != NULL);
  if (!v) return;
  CHECK(vqgpt_json_get_string(v, "s") && strcmp(vqgpt_json_get_string(v, "s"), "hi") == 0);
  CHECK(vqgpt_json_get_bool(v, "t", &b) && b);
  int64_t dims[4] = {0, 0, 0, 7};
  CHECK(vqgpt_json_get_int_array(v, "dims", dims, 4) == 3 && dims[0] == 3 && dims[2] == 5 &&
        dims[3] == 7);
  CHECK(vqgpt_json_get_int_array(v, "dims", dims, 2) == -1);  // longer than max
  CHECK(vqgpt_json_get_int_array(v, "mixed", dims, 4) == -1 && dims[0] == 3);
  CHECK(vqgpt_json_get_int_array(v, "s", dims, 4) == -1);
  CHECK(vqgpt_json_get_int(v, "neg", &i) && i == INT64_MIN);
  // 2^63 - 1 rounds to 2^63 as a double, which is outside int64.
  CHECK(!vqgpt_json_get_int(v, "over", &i));
  vqgpt_json_free(v);

  // Empty containers and scalars at top level.
  accept("[]");
  accept("{}");
  accept("0");
  accept("-0.0e+0");
  accept("\"\"");
  accept("  null  ");
  accept("[[[[]]]]");
}

static void test_strings(void) {
  check_string("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", "a\"b\\c/d\b\f\n\r\t");
  check_string("\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac");
  check_string("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80");  // U+1F600 from a surrogate pair
  check_string("\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf");  // U+10FFFF
  check_string("\"\xc3\xa9\xf0\x9f\x98\x80\"", "\xc3\xa9\xf0\x9f\x98\x80");  // raw UTF-8
  check_string("\"\\u007f\"", "\x7f");
}

static void test_rejects(void) {
  reject("", "value expected");
  reject("   ", "value expected");
  reject("[1,]", "unexpected character at byte 3");
  reject("{\"a\":1,}", "object key expected");
  reject("{a:1}", "object key expected");
  reject("{\"a\" 1}", "':' expected");
  reject("{\"a\":1 \"b\":2}", "',' or '}' expected");
  reject("[1 2]", "',' or ']' expected");
  reject("[1", "unterminated array");
  reject("{\"a\":1", "unterminated object");
  reject("\"abc", "unterminated string");
  reject("\"abc\\", "unterminated string");
  reject("01", "leading zero");
  reject("-", "invalid number");
  reject("+1", "unexpected character");
  reject(".5", "unexpected character");
  reject("1.", "digit expected after decimal point");
  reject("1e", "digit expected in exponent");
  reject("1e+", "digit expected in exponent");
  reject("NaN", "unexpected character");
  reject("Infinity", "unexpected character");
  reject("tru", "invalid literal");
  reject("nul", "invalid literal");
  reject("True", "unexpected character");
  reject("1 2", "trailing characters");
  reject("{} x", "trailing characters");
  reject("'a'", "unexpected character");
  reject("\"a\tb\"", "control character");
  reject("\"a\nb\"", "control character");
  reject("\"\\x\"", "invalid escape");
  reject("\"\\u12\"", "\\u escape");
  reject("\"\\u12", "unterminated string");
  reject("\"\\uZZZZ\"", "invalid hex digit");
  reject("\"\\udc00\"", "unpaired low surrogate");
  reject("\"\\ud800\"", "high surrogate not followed");
  reject("\"\\ud800\\u0041\"", "high surrogate not followed");
  reject("\"\\ud800x\"", "high surrogate not followed");
  reject("\"\\u0000\"", "\\u0000");
  reject("\"\xff\"", "invalid UTF-8");
  reject("\"\xc0\xaf\"", "invalid UTF-8");          // overlong '/'
  reject("\"\xed\xa0\x80\"", "invalid UTF-8");      // encoded surrogate
  reject("\"\xf4\x90\x80\x80\"", "invalid UTF-8");  // above U+10FFFF
  reject("\"\xe2\x82\"", "invalid UTF-8");          // truncated sequence
  reject("{\"a\":1,\"b\":2,\"a\":3}", "duplicate key 'a'");
  reject("[{\"k\":[],\"k\":{}}]", "duplicate key 'k'");

  // Embedded NUL in the middle of the buffer is not whitespace.
  json_value *v = vqgpt_json_parse("[1]\0", 4);
  CHECK(v == NULL &&
        strstr(vqgpt_last_error(), "trailing characters after the document at byte 3"));
  vqgpt_json_free(v);
  // Only `len` bytes are read: a valid prefix of a longer buffer parses.
  v = vqgpt_json_parse("[1]garbage", 3);
  CHECK(v && v->count == 1);
  vqgpt_json_free(v);
  // The position is reported.
  reject("[1, 2, x]", "at byte 7");
}

static void test_nesting(void) {
  char deep[200];
  for (int n = 63; n <= 66; n++) {
    for (int i = 0; i < n; i++) deep[i] = '[', deep[2 * n - 1 - i] = ']';
    json_value *v = vqgpt_json_parse(deep, (size_t)2 * n);
    if (n <= 64) {
      CHECKF(v != NULL, "depth %d rejected: %s", n, vqgpt_last_error());
    } else {
      CHECKF(v == NULL && strstr(vqgpt_last_error(), "nesting deeper than 64"), "depth %d: %s", n,
             vqgpt_last_error());
    }
    vqgpt_json_free(v);
  }
  // An unterminated deep document fails without reading past len.
  memset(deep, '[', sizeof deep);
  json_value *v = vqgpt_json_parse(deep, 50);
  CHECK(v == NULL && strstr(vqgpt_last_error(), "value expected at byte 50"));
}

static void test_large_object(void) {
  // Many keys exercise the growth path and the sorted duplicate check. Key of item i is
  // k<(i * 7919) % n>, a permutation, so all keys are distinct and unsorted.
  size_t n = 5000, cap = n * 24 + 16, len = 0;
  char *doc = malloc(cap);
  CHECK(doc != NULL);
  if (!doc) return;
  len += (size_t)snprintf(doc + len, cap - len, "{");
  for (size_t i = 0; i < n; i++)
    len +=
        (size_t)snprintf(doc + len, cap - len, "%s\"k%zu\":%zu", i ? "," : "", (i * 7919) % n, i);
  len += (size_t)snprintf(doc + len, cap - len, "}");
  json_value *v = vqgpt_json_parse(doc, len);
  CHECKF(v && v->count == n, "large object: %s", v ? "wrong count" : vqgpt_last_error());
  int64_t x = -1;
  CHECK(vqgpt_json_get_int(v, "k2919", &x) && x == 1);
  CHECK(vqgpt_json_get_int(v, "k0", &x) && x == 0);
  vqgpt_json_free(v);
  // Rename item 1's key to item 0's: whitespace may follow a key, so the text stays valid
  // JSON and only the duplicate is wrong.
  char *k = strstr(doc, "\"k2919\"");
  CHECK(k != NULL);
  if (k) {
    memcpy(k, "\"k0\"   ", 7);
    v = vqgpt_json_parse(doc, len);
    CHECKF(v == NULL && strstr(vqgpt_last_error(), "duplicate key 'k0'"), "duplicate: %s",
           vqgpt_last_error());
    vqgpt_json_free(v);
  }
  free(doc);
}

static void test_utf8_valid(void) {
  CHECK(vqgpt_json_utf8_valid("", 0));
  CHECK(vqgpt_json_utf8_valid("plain ascii", 11));
  CHECK(vqgpt_json_utf8_valid("\xe2\x82\xac", 3));
  CHECK(!vqgpt_json_utf8_valid("\xe2\x82", 2));
  CHECK(!vqgpt_json_utf8_valid("\x80", 1));
  CHECK(!vqgpt_json_utf8_valid("\xf5\x80\x80\x80", 4));
}

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  test_values();
  test_strings();
  test_rejects();
  test_nesting();
  test_large_object();
  test_utf8_valid();
  return test_finish("test_json");
}
