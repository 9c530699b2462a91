// The GPT's card: what a model knows about itself beyond its architecture (class names,
// recommended sampling settings, the VQGAN it was trained with, its tokenizer).
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "stage2_transformer/gpt.h"
#include "weights/json.h"

#define GPT_CARD_MAX_TOKENIZER (64u << 20)

void vqgpt_gpt_card_free(gpt_card *card) {
  free(card->class_names);
  free(card->sampling);
  free(card->vqgan);
  free(card->tokenizer);
  memset(card, 0, sizeof *card);
}

// A copy of metadata `key` if it is JSON of the given type (every class name a string).
static int read_json_meta(char **out, const st_file *f, const char *key, json_type type,
                          const char *source) {
  const char *text = vqgpt_st_meta(f, key);
  if (!text) return 0;
  json_value *v = vqgpt_json_parse(text, strlen(text));
  bool ok = v && v->type == type;
  for (size_t i = 0; ok && type == JSON_ARRAY && i < v->count; i++)
    ok = v->items[i].type == JSON_STRING;
  vqgpt_json_free(v);
  if (!ok)
    return vqgpt_error("%s: metadata '%s' is not a JSON %s", source, key,
                       type == JSON_ARRAY ? "array of strings" : "object");
  *out = strdup(text);
  return *out ? 0 : vqgpt_error("out of memory");
}

int vqgpt_gpt_card_read(gpt_card *card, const st_file *f, const char *source) {
  memset(card, 0, sizeof *card);
  if (read_json_meta(&card->class_names, f, "class_names", JSON_ARRAY, source) ||
      read_json_meta(&card->sampling, f, "sampling", JSON_OBJECT, source) ||
      read_json_meta(&card->vqgan, f, "vqgan", JSON_OBJECT, source)) {
    vqgpt_gpt_card_free(card);
    return -1;
  }
  const st_tensor *t = vqgpt_st_find(f, "tokenizer");
  if (t) {
    if (t->dtype != ST_U8 || t->ndim != 1 || t->nbytes < 1 || t->nbytes > GPT_CARD_MAX_TOKENIZER) {
      vqgpt_gpt_card_free(card);
      return vqgpt_error("%s: tensor 'tokenizer' must be U8 bytes (1 B to 64 MiB)", source);
    }
    card->tokenizer = malloc(t->nbytes);
    if (!card->tokenizer) {
      vqgpt_gpt_card_free(card);
      return vqgpt_error("out of memory");
    }
    memcpy(card->tokenizer, t->data, t->nbytes);
    card->tokenizer_bytes = t->nbytes;
  }
  return 0;
}

int vqgpt_gpt_card_write(const gpt_card *card, st_writer *w) {
  if ((card->class_names && vqgpt_st_writer_meta(w, "class_names", card->class_names)) ||
      (card->sampling && vqgpt_st_writer_meta(w, "sampling", card->sampling)) ||
      (card->vqgan && vqgpt_st_writer_meta(w, "vqgan", card->vqgan)))
    return -1;
  if (card->tokenizer) {
    int64_t shape[1] = {(int64_t)card->tokenizer_bytes};
    if (vqgpt_st_writer_add(w, "tokenizer", ST_U8, 1, shape, card->tokenizer)) return -1;
  }
  return 0;
}
