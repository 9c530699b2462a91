// A small, strict JSON reader for safetensors headers and model configs. Parses a whole
// document into a tree; lookups never fail hard (they return NULL / the fallback).
#ifndef VQGPT_JSON_H
#define VQGPT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value {
  json_type type;
  bool boolean;
  double number;
  char *string;              // JSON_STRING (NUL-terminated, unescaped)
  size_t count;              // JSON_ARRAY / JSON_OBJECT: number of items
  struct json_value *items;  // array elements or object values
  char **keys;               // JSON_OBJECT: keys, parallel to items
} json_value;

// Parses exactly `len` bytes (no NUL needed). On error returns NULL and sets
// vqgpt_last_error() to "<what> at byte N". Nesting is limited to 64 levels. Beyond RFC 8259,
// duplicate keys in an object and "\u0000" in a string are rejected: either would make two
// different documents look the same through the lookups below.
json_value *vqgpt_json_parse(const char *text, size_t len);
void vqgpt_json_free(json_value *v);

const json_value *vqgpt_json_get(const json_value *obj, const char *key);  // NULL if absent
const json_value *vqgpt_json_at(const json_value *arr, size_t i);          // NULL if out of range
// Typed lookups of a key; return false if missing or of another type (integers must be
// whole numbers within int64 range).
bool vqgpt_json_get_int(const json_value *obj, const char *key, int64_t *out);
bool vqgpt_json_get_number(const json_value *obj, const char *key, double *out);
bool vqgpt_json_get_bool(const json_value *obj, const char *key, bool *out);
const char *vqgpt_json_get_string(const json_value *obj, const char *key);
// An array of whole numbers into out (up to max); returns count or -1 if not such an array.
int vqgpt_json_get_int_array(const json_value *obj, const char *key, int64_t *out, int max);

// True if s[0..len) is well-formed UTF-8 (RFC 3629), the only text a JSON document may hold;
// writers check names with it before emitting them.
bool vqgpt_json_utf8_valid(const char *s, size_t len);

#endif
