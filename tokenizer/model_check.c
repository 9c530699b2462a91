#include "tokenizer/model_check.h"

#include <stdbool.h>
#include <stdint.h>

// ModelProto fields (sentencepiece_model.proto): pieces = 1, trainer_spec = 2,
// normalizer_spec = 3, denormalizer_spec = 5; NormalizerSpec.precompiled_charsmap = 2.
enum {
  MODEL_PIECES = 1,
  MODEL_TRAINER_SPEC = 2,
  MODEL_NORMALIZER_SPEC = 3,
  MODEL_DENORMALIZER_SPEC = 5
};
enum { NORMALIZER_CHARSMAP = 2 };

typedef struct {
  uint64_t number;
  const unsigned char *data;  // payload of a length-delimited field, else NULL
  size_t len;
} proto_field;

static bool read_varint(const unsigned char *p, size_t n, size_t *i, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64 && *i < n; shift += 7) {
    unsigned char b = p[(*i)++];
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (b < 0x80) return true;
  }
  return false;
}

// Reads the protobuf record at p[*i] (p has n bytes) and moves *i past it; false if it is
// malformed or runs past the end.
static bool next_field(const unsigned char *p, size_t n, size_t *i, proto_field *f) {
  uint64_t key, v;
  if (!read_varint(p, n, i, &key)) return false;
  f->number = key >> 3;
  f->data = NULL;
  f->len = 0;
  switch (key & 7) {
    case 0:
      return read_varint(p, n, i, &v);
    case 1:
      if (n - *i < 8) return false;
      *i += 8;
      return true;
    case 5:
      if (n - *i < 4) return false;
      *i += 4;
      return true;
    case 2:
      if (!read_varint(p, n, i, &v) || v > n - *i) return false;
      f->data = p + *i;
      f->len = (size_t)v;
      *i += (size_t)v;
      return true;
    default:
      return false;  // groups: not in a ModelProto
  }
}

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// A precompiled_charsmap is [u32 trie size][darts-clone double-array trie][NUL-terminated
// replacement strings]. A lookup starts at unit 0 and, for each byte c matched at unit j, goes
// to unit (j ^ offset(j)) ^ c, and at a leaf reads a string offset from unit j ^ offset(j).
// SentencePiece 0.1.97 follows these unchecked, so a corrupt table reads out of bounds:
// require every unit a lookup can pass through (bit 31 clear) to lead inside the trie and
// every leaf to name a string inside the table.
static bool charsmap_safe(const unsigned char *p, size_t n) {
  if (n == 0) return true;  // no table: no normalization
  if (n < 4) return false;
  uint32_t trie_bytes = le32(p);
  // darts-clone arrays come in blocks of 256 four-byte units; strings follow, NUL-terminated.
  if (trie_bytes == 0 || trie_bytes % 1024 || trie_bytes >= n - 4 || p[n - 1] != '\0') return false;
  const unsigned char *trie = p + 4;
  size_t units = trie_bytes / 4, strings = n - 4 - trie_bytes;
  for (size_t j = 0; j < units; j++) {
    uint32_t u = le32(trie + 4 * j);
    if (j > 0 && (u >> 31)) continue;  // a leaf's value: never walked through (unit 0 always is)
    size_t next = j ^ ((u >> 10) << ((u & (1u << 9)) >> 6));
    if ((next | 0xff) >= units) return false;
    if (((u >> 8) & 1) && (le32(trie + 4 * next) & 0x7fffffffu) >= strings) return false;
  }
  return true;
}

static bool normalizer_safe(const unsigned char *p, size_t n) {
  proto_field f;
  for (size_t i = 0; i < n;) {
    if (!next_field(p, n, &i, &f)) return false;
    if (f.number == NORMALIZER_CHARSMAP && (!f.data || !charsmap_safe(f.data, f.len))) return false;
  }
  return true;
}

const char *vqgpt_tokenizer_model_problem(const void *data, size_t n) {
  const unsigned char *p = data;
  bool seen[4] = {false, false, false, false};
  proto_field f;
  for (size_t i = 0; i < n;) {
    if (!next_field(p, n, &i, &f)) return "malformed or truncated";
    if (f.number < 4) seen[f.number] = true;
    if ((f.number == MODEL_NORMALIZER_SPEC || f.number == MODEL_DENORMALIZER_SPEC) &&
        (!f.data || !normalizer_safe(f.data, f.len)))
      return "corrupt normalization table";
  }
  // SentencePiece takes a model cut at any record boundary (protobuf has no length or
  // checksum) as a smaller model. Fields are written in number order, so requiring the pieces
  // and both specs makes every cut before the end of the normalizer spec an error.
  if (!seen[MODEL_PIECES] || !seen[MODEL_TRAINER_SPEC] || !seen[MODEL_NORMALIZER_SPEC])
    return "malformed or truncated";
  return NULL;
}
