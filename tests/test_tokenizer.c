// Text tokenizer: a model trained here on generated captions, loaded from its file and from
// memory; encode/decode round trips, the special ids, and hostile models, prompts, caption
// files and arguments, each answered by one error line.
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

#define VOCAB 96

static const char *ITEMS[] = {"t-shirt", "trousers", "pullover", "dress", "coat",
                              "sandal",  "shirt",    "sneaker",  "bag",   "ankle boot"};
static const char *COLOURS[] = {"red", "green", "blue", "yellow", "white"};

// Captions in the three forms the real models see, each item and colour in every position.
static void write_captions(const char *path) {
  FILE *fp = fopen(path, "w");
  CHECK(fp != NULL);
  if (!fp) return;
  for (int i = 0; i < 10; i++)
    for (int c = 0; c < 5; c++) {
      const char *a = ITEMS[i], *b = ITEMS[(i * 3 + c + 1) % 10], *ca = COLOURS[c],
                 *cb = COLOURS[(c + i + 2) % 5];
      fprintf(fp, "a %s %s and a %s %s\n", ca, a, cb, b);
      fprintf(fp, "a %s %s to the right of a %s %s\n", cb, b, ca, a);
      fprintf(fp, "%s %s on the left, %s %s on the right\n", ca, a, cb, b);
    }
  fclose(fp);
}

// The call failed with one line containing `what`.
static void expect_error(int failed, const char *what, const char *label) {
  const char *e = vqgpt_last_error();
  CHECKF(failed, "%s: accepted", label);
  if (!failed) return;
  CHECKF(strstr(e, what) != NULL, "%s: error '%s' lacks '%s'", label, e, what);
  CHECKF(strchr(e, '\n') == NULL, "%s: error spans lines", label);
}

static void expect_load_error(const void *data, size_t n, const char *what, const char *label) {
  vqgpt_clear_error();
  vqgpt_tokenizer *tok = vqgpt_tokenizer_load_bytes(data, n, "model.bin");
  expect_error(tok == NULL, what, label);
  if (tok) {
    vqgpt_tokenizer_free(tok);
    return;
  }
  CHECKF(strncmp(vqgpt_last_error(), "model.bin: ", 11) == 0,
         "%s: error does not name the source: %s", label, vqgpt_last_error());
}

// Encodes text into ids (room for 256), failing the test if it does not encode.
static int encode(const vqgpt_tokenizer *tok, const char *text, int32_t *ids) {
  int n = -1;
  int rc = vqgpt_tokenizer_encode(tok, text, ids, 256, &n);
  CHECKF(rc == 0 && n > 0, "'%s' does not encode: %s", text, vqgpt_last_error());
  return rc ? 0 : n;
}

static bool same_ids(const vqgpt_tokenizer *a, const vqgpt_tokenizer *b, const char *text) {
  int32_t x[256], y[256];
  int nx = encode(a, text, x), ny = encode(b, text, y);
  return nx == ny && memcmp(x, y, (size_t)nx * sizeof *x) == 0;
}

static void test_load_and_round_trip(const char *model_path) {
  vqgpt_tokenizer *tok = vqgpt_tokenizer_load_file(model_path);
  CHECKF(tok != NULL, "load: %s", vqgpt_last_error());
  if (!tok) return;
  CHECK(vqgpt_tokenizer_vocab_size(tok) == VOCAB);
  CHECK(vqgpt_tokenizer_pad_id(tok) == 0 && vqgpt_tokenizer_unk_id(tok) == 1);
  CHECK(vqgpt_tokenizer_bos_id(tok) == 2 && vqgpt_tokenizer_eos_id(tok) == 3);

  // From memory: the same ids, and the bytes handed back are the file's, exactly.
  size_t n_file, n_back;
  unsigned char *file = read_all(model_path, &n_file);
  vqgpt_tokenizer *mem = file ? vqgpt_tokenizer_load_bytes(file, n_file, "memory") : NULL;
  CHECKF(mem != NULL, "load_bytes: %s", vqgpt_last_error());
  const void *back = vqgpt_tokenizer_model_bytes(tok, &n_back);
  CHECK(file && n_back == n_file && memcmp(back, file, n_file) == 0);
  free(file);  // load_bytes keeps its own copy

  const char *captions[] = {"a red sneaker and a blue bag",
                            "a blue bag to the right of a red sneaker",
                            "red sneaker on the left, blue bag on the right",
                            "a white ankle boot and a green t-shirt", "yellow pullover"};
  for (size_t i = 0; i < sizeof captions / sizeof captions[0]; i++) {
    int32_t ids[256];
    int n = encode(tok, captions[i], ids);
    for (int k = 0; k < n; k++) CHECK(ids[k] >= 4 && ids[k] < VOCAB);  // no special or unknown ids
    char *text = vqgpt_tokenizer_decode(tok, ids, n);
    CHECKF(text && strcmp(text, captions[i]) == 0, "round trip of '%s' gave '%s'", captions[i],
           text ? text : "NULL");
    free(text);
    if (mem)
      CHECKF(same_ids(tok, mem, captions[i]), "file and memory models differ on '%s'", captions[i]);
  }
  // A frequent word is one piece; case, tabs, newlines and extra spaces do not change the ids.
  int32_t ids[256], other[256];
  CHECK(encode(tok, "red", ids) == 1);
  int n = encode(tok, "a red sneaker", ids);
  const char *variants[] = {"A Red SNEAKER", "a\tred\nsneaker", "  a red   sneaker\r\n"};
  for (size_t i = 0; i < 3; i++)
    CHECKF(encode(tok, variants[i], other) == n && memcmp(ids, other, (size_t)n * sizeof *ids) == 0,
           "'%s' encodes differently", variants[i]);
  // Characters the captions never had become the unk id.
  n = encode(tok, "a red \xf0\x9f\x8e\x89 bag", ids);
  bool has_unk = false;
  for (int k = 0; k < n; k++) has_unk |= ids[k] == 1;
  CHECK(has_unk);
  // Control pieces decode to nothing; zero ids decode to "".
  int32_t specials[3] = {0, 2, 3};
  char *text = vqgpt_tokenizer_decode(tok, specials, 3);
  CHECK(text && text[0] == '\0');
  free(text);
  text = vqgpt_tokenizer_decode(tok, specials, 0);
  CHECK(text && text[0] == '\0');
  free(text);
  vqgpt_tokenizer_free(mem);
  vqgpt_tokenizer_free(tok);
  vqgpt_tokenizer_free(NULL);
}

static void test_id_limits(const char *model_path) {
  vqgpt_tokenizer *tok = vqgpt_tokenizer_load_file(model_path);
  CHECK(tok != NULL);
  if (!tok) return;
  const char *caption = "a blue bag to the right of a red sneaker";
  int32_t ids[256];
  int need = encode(tok, caption, ids), n = -1;
  CHECK(need > 2);
  // Exactly enough room works; one less is an error that says how many are needed.
  CHECK(vqgpt_tokenizer_encode(tok, caption, ids, need, &n) == 0 && n == need);
  vqgpt_clear_error();
  expect_error(vqgpt_tokenizer_encode(tok, caption, ids, need - 1, &n) != 0,
               "tokens, the model takes", "too many ids");
  char want[64];
  snprintf(want, sizeof want, "prompt needs %d tokens, the model takes %d", need, need - 1);
  CHECKF(strcmp(vqgpt_last_error(), want) == 0 && n == need, "got '%s', n %d", vqgpt_last_error(),
         n);
  // No room at all asks for the count.
  CHECK(vqgpt_tokenizer_encode(tok, caption, NULL, 0, &n) != 0 && n == need);
  expect_error(vqgpt_tokenizer_encode(tok, caption, ids, -1, &n) != 0, "negative",
               "negative max_ids");

  // Ids outside the vocabulary are refused before SentencePiece sees them.
  int32_t bad[3] = {5, VOCAB, 6};
  vqgpt_clear_error();
  expect_error(vqgpt_tokenizer_decode(tok, bad, 3) == NULL,
               "token id 96 at position 1 is outside the vocabulary (0..95)", "id = vocab");
  bad[1] = -1;
  expect_error(vqgpt_tokenizer_decode(tok, bad, 3) == NULL, "token id -1", "negative id");
  expect_error(vqgpt_tokenizer_decode(tok, bad, -2) == NULL, "negative count", "negative count");
  vqgpt_tokenizer_free(tok);
}

static void test_hostile_prompts(const char *model_path) {
  vqgpt_tokenizer *tok = vqgpt_tokenizer_load_file(model_path);
  CHECK(tok != NULL);
  if (!tok) return;
  struct {
    const char *text, *what;
  } cases[] = {
      {"", "prompt is empty"},
      {" \t\r\n ", "prompt is only whitespace"},
      {"\xe3\x80\x80", "prompt gives no tokens"},  // an ideographic space: normalized away
      {"a red\x01 bag", "control character U+0001 (byte 5)"},
      {"a red\x1b[31m bag", "control character U+001B"},
      {"a red bag\x7f", "control character U+007F (byte 9)"},
      {"a red \xc2\x85 bag", "control character U+0085 (byte 6)"},
      {"a red \xff bag", "not valid UTF-8 (byte 6)"},
      {"a red \xc0\xaf bag", "not valid UTF-8"},       // overlong '/'
      {"a red \xe0\x80\xaf bag", "not valid UTF-8"},   // overlong, three bytes
      {"a red \xed\xa0\x80 bag", "not valid UTF-8"},   // a UTF-16 surrogate
      {"a red \xf4\x90\x80\x80", "not valid UTF-8"},   // past U+10FFFF
      {"a red \xe2\x82", "not valid UTF-8 (byte 6)"},  // truncated at the end
      {"a red \x80 bag", "not valid UTF-8"},           // a lone continuation byte
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int32_t ids[64];
    int n = -1;
    vqgpt_clear_error();
    expect_error(vqgpt_tokenizer_encode(tok, cases[i].text, ids, 64, &n) != 0, cases[i].what,
                 cases[i].what);
    CHECK(n == 0);
  }
  int n = -1;
  expect_error(vqgpt_tokenizer_encode(tok, NULL, NULL, 0, &n) != 0, "prompt is missing",
               "NULL prompt");

  // The byte limit: 64 KiB passes the checks, one byte more does not, and 1 MB is refused
  // without being tokenized.
  char *big = malloc((1 << 20) + 1);
  CHECK(big != NULL);
  if (big) {
    for (int i = 0; i < 1 << 20; i++) big[i] = i % 2 ? ' ' : 'a';
    big[TOKENIZER_MAX_TEXT_BYTES] = '\0';
    CHECKF(vqgpt_tokenizer_check_text(big) == 0, "64 KiB: %s", vqgpt_last_error());
    big[TOKENIZER_MAX_TEXT_BYTES] = 'a';
    big[TOKENIZER_MAX_TEXT_BYTES + 1] = '\0';
    expect_error(vqgpt_tokenizer_check_text(big) != 0,
                 "prompt has 65537 bytes, at most 65536 are allowed", "64 KiB + 1");
    big[TOKENIZER_MAX_TEXT_BYTES + 1] = ' ';
    big[1 << 20] = '\0';
    int32_t ids[16];
    expect_error(vqgpt_tokenizer_encode(tok, big, ids, 16, &n) != 0, "prompt has 1048576 bytes",
                 "1 MB prompt");
    free(big);
  }
  vqgpt_tokenizer_free(tok);
}

static void test_hostile_models(const char *model_path) {
  size_t n;
  unsigned char *good = read_all(model_path, &n);
  CHECK(good != NULL && n > 2000);
  if (!good) return;
  // Truncated anywhere in the pieces and specs, including at record boundaries (which
  // SentencePiece alone would load as a smaller model), and inside the normalizer's data.
  for (size_t cut = 1; cut < 1200; cut++) {
    char label[40];
    snprintf(label, sizeof label, "truncated at %zu", cut);
    expect_load_error(good, cut, "not a SentencePiece model", label);
  }
  size_t cuts[] = {n / 2, n - 1000, n - 1};
  for (size_t i = 0; i < 3; i++)
    expect_load_error(good, cuts[i], "malformed or truncated", "truncated late");
  expect_load_error(good, 0, "empty tokenizer model", "empty buffer");
  expect_load_error(NULL, 0, "empty tokenizer model", "NULL buffer");
  // Random bytes of several sizes.
  uint64_t state = 12345;
  unsigned char *junk = malloc(n);
  CHECK(junk != NULL);
  for (size_t size = 1; junk && size <= n; size = size * 7 + 3) {
    for (size_t i = 0; i < size; i++) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      junk[i] = (unsigned char)(state >> 56);
    }
    expect_load_error(junk, size, "not a SentencePiece model", "random bytes");
  }
  free(junk);
  // Well-formed records that do not make a model: empty pieces and specs, and a text file.
  expect_load_error("\x0a\x00\x12\x00\x1a\x00", 6, "not a SentencePiece model", "empty specs");
  const char *text = "a red sneaker and a blue bag\n";
  expect_load_error(text, strlen(text), "not a SentencePiece model", "caption text");
  free(good);

  // Files: missing, a directory, empty.
  pathbuf missing = tmp_path("missing.model"), empty = tmp_path("empty.model");
  vqgpt_clear_error();
  expect_error(vqgpt_tokenizer_load_file(missing.s) == NULL, "missing.model: cannot open",
               "missing file");
  expect_error(vqgpt_tokenizer_load_file(tmpdir) == NULL, "not a regular file", "directory");
  CHECK(write_bytes(empty.s, "", 0) == 0);
  expect_error(vqgpt_tokenizer_load_file(empty.s) == NULL, "empty.model: file is empty",
               "empty file");
  unlink(empty.s);
}

// Bit flips all over a valid model: each copy either loads and then encodes and decodes
// without harm, or is refused with one line. SentencePiece 0.1.97 trusts its normalization
// table, so flips there must be caught before it parses the model (without that check this
// test crashes).
static void test_mutated_models(const char *model_path) {
  size_t n;
  unsigned char *good = read_all(model_path, &n), *m = malloc(n ? n : 1);
  CHECK(good && m);
  if (!good || !m) {
    free(good);
    free(m);
    return;
  }
  const char *texts[] = {"a red sneaker and a blue bag",
                         "\xef\xbc\xb2\xef\xbd\x85"
                         "d \xc2\xbd \xef\xac\x81 \xc3\xa9 \xe2\x91\xa0 x\xe3\x80\x80y",
                         "A\tB  C"};
  int32_t all[VOCAB];
  for (int i = 0; i < VOCAB; i++) all[i] = i;
  uint64_t state = 7;
  int loaded = 0, corrupt_table = 0;
  for (int t = 0; t < 400; t++) {
    memcpy(m, good, n);
    for (int k = 0; k <= t % 3; k++) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      size_t at = (size_t)(state >> 33) % (t % 2 ? 1000 : n);  // half in the pieces and specs
      m[at] ^= (unsigned char)(1u << (state >> 29 & 7));
    }
    vqgpt_clear_error();
    vqgpt_tokenizer *tok = vqgpt_tokenizer_load_bytes(m, n, "mutated");
    if (!tok) {
      CHECKF(strchr(vqgpt_last_error(), '\n') == NULL, "mutation %d: error spans lines", t);
      corrupt_table += strstr(vqgpt_last_error(), "corrupt normalization table") != NULL;
      continue;
    }
    loaded++;
    for (size_t q = 0; q < sizeof texts / sizeof texts[0]; q++) {
      int32_t ids[256];
      int count;
      if (vqgpt_tokenizer_encode(tok, texts[q], ids, 256, &count) == 0)
        free(vqgpt_tokenizer_decode(tok, ids, count));
    }
    int size = vqgpt_tokenizer_vocab_size(tok);
    free(vqgpt_tokenizer_decode(tok, all, size < VOCAB ? size : VOCAB));
    vqgpt_tokenizer_free(tok);
  }
  CHECKF(loaded > 100 && corrupt_table > 50, "loaded %d, corrupt tables %d of 400", loaded,
         corrupt_table);
  free(good);
  free(m);
}

// Lists tmpdir: the names joined by spaces, to check that a failed run left nothing.
static void list_dir(char *out, size_t cap) {
  out[0] = '\0';
  DIR *d = opendir(tmpdir);
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));)
    if (e->d_name[0] != '.' && strlen(out) + strlen(e->d_name) + 2 < cap) {
      strcat(out, e->d_name);
      strcat(out, " ");
    }
  closedir(d);
}

static void expect_train_error(const char *text_path, int vocab, const char *out, const char *what,
                               const char *label) {
  char before[1024], after[1024];
  list_dir(before, sizeof before);
  vqgpt_clear_error();
  expect_error(vqgpt_tokenizer_train(text_path, vocab, out) != 0, what, label);
  list_dir(after, sizeof after);
  CHECKF(strcmp(before, after) == 0, "%s: files changed: '%s' -> '%s'", label, before, after);
}

static void test_train(const char *captions, const char *model_path) {
  // The same captions give the same bytes.
  pathbuf again = tmp_path("again.model");
  CHECKF(vqgpt_tokenizer_train(captions, VOCAB, again.s) == 0, "%s", vqgpt_last_error());
  size_t na, nb;
  unsigned char *a = read_all(model_path, &na), *b = read_all(again.s, &nb);
  CHECK(a && b && na == nb && memcmp(a, b, na) == 0);
  free(a);
  free(b);
  unlink(again.s);

  pathbuf out = tmp_path("out.model"), bad = tmp_path("bad.txt");
  expect_train_error(captions, 8, out.s, "vocabulary size 8 is outside 16..65536",
                     "vocab too small");
  expect_train_error(captions, 100000, out.s, "vocabulary size 100000 is outside",
                     "vocab too large");
  expect_train_error(captions, 5000, out.s, "Vocabulary size too high (5000)",
                     "vocab beyond the text");
  expect_train_error(tmp_path("none.txt").s, VOCAB, out.s, "none.txt: cannot open", "missing text");
  expect_train_error(tmpdir, VOCAB, out.s, "not a regular file", "directory");
  pathbuf nodir = tmp_path("no/such/dir/out.model");
  expect_train_error(captions, VOCAB, nodir.s, "out.model: cannot write", "unwritable output");
  expect_train_error(captions, VOCAB, captions, "is the caption file", "output over the captions");

  struct {
    const char *text, *what;
  } files[] = {
      {"", "bad.txt: file is empty"},
      {"\n \n\t\r\n", "bad.txt: no captions (only blank lines)"},
      {"a red bag\na blue\xff bag\n", "bad.txt: line 2 is not valid UTF-8 (byte 6)"},
      {"a red bag\n\na green\x02 coat", "bad.txt: line 3 contains control character U+0002"},
      {"a red bag\0 and a coat\n", "line 1 contains control character U+0000"},
  };
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    size_t len = strlen(files[i].text);
    if (i == 4) len = 22;  // the NUL inside the text
    CHECK(write_bytes(bad.s, files[i].text, len) == 0);
    expect_train_error(bad.s, VOCAB, out.s, files[i].what, files[i].what);
  }
  // A line longer than a prompt may be.
  char *line = malloc(TOKENIZER_MAX_TEXT_BYTES + 2);
  CHECK(line != NULL);
  if (line) {
    memset(line, 'a', TOKENIZER_MAX_TEXT_BYTES + 1);
    line[TOKENIZER_MAX_TEXT_BYTES + 1] = '\n';
    CHECK(write_bytes(bad.s, line, TOKENIZER_MAX_TEXT_BYTES + 2) == 0);
    expect_train_error(bad.s, VOCAB, out.s, "line 1 has 65537 bytes, at most 65536", "long line");
    free(line);
  }
  unlink(bad.s);

  // A failed run over an existing model leaves it as it was.
  pathbuf keep = tmp_path("keep.model");
  CHECK(write_bytes(keep.s, "old", 3) == 0);
  expect_train_error(captions, 5000, keep.s, "Vocabulary size too high", "existing output");
  size_t nk;
  unsigned char *k = read_all(keep.s, &nk);
  CHECK(k && nk == 3 && memcmp(k, "old", 3) == 0);
  free(k);
  unlink(keep.s);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/vqgpt_tokenizer_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  pathbuf captions = tmp_path("captions.txt"), model = tmp_path("tok.model");
  write_captions(captions.s);
  int rc = vqgpt_tokenizer_train(captions.s, VOCAB, model.s);
  CHECKF(rc == 0, "train: %s", vqgpt_last_error());
  if (rc == 0) {
    test_load_and_round_trip(model.s);
    test_id_limits(model.s);
    test_hostile_prompts(model.s);
    test_hostile_models(model.s);
    test_mutated_models(model.s);
    test_train(captions.s, model.s);
  }
  unlink(model.s);
  unlink(captions.s);
  CHECKF(rmdir(tmpdir) == 0, "temporary directory not empty: %s", strerror(errno));
  return test_finish("test_tokenizer");
}
