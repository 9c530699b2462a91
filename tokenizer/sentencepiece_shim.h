// Internal to tokenizer/: the C view of SentencePiece that sentencepiece_shim.cc (the only C++
// in vqgpt) provides. It does no validation of its own beyond what SentencePiece does; the
// public API in tokenizer.h checks inputs first. Every function catches all exceptions and
// reports failures through vqgpt_error(); none aborts.
#ifndef VQGPT_TOKENIZER_SENTENCEPIECE_SHIM_H
#define VQGPT_TOKENIZER_SENTENCEPIECE_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tokenizer_spm tokenizer_spm;

typedef struct {
  int vocab_size;                      // number of pieces; ids are 0 .. vocab_size-1
  int pad_id, unk_id, bos_id, eos_id;  // -1 when the model has none
} tokenizer_spm_info;

// Parses a serialized ModelProto. Errors are "<source>: ...". NULL on failure.
tokenizer_spm *vqgpt_tokenizer_spm_load(const void *data, size_t n, const char *source,
                                        tokenizer_spm_info *info);
void vqgpt_tokenizer_spm_free(tokenizer_spm *sp);

// Encodes `text` (n bytes) to piece ids: stores the first min(count, max_ids) in ids and the
// count in *n_ids. Returns 0, or -1 if SentencePiece fails.
int vqgpt_tokenizer_spm_encode(const tokenizer_spm *sp, const char *text, size_t n, int32_t *ids,
                               int max_ids, int *n_ids);

// Decodes ids (each already checked to be in range) to a malloc'd string; NULL on failure.
char *vqgpt_tokenizer_spm_decode(const tokenizer_spm *sp, const int32_t *ids, int n);

// Trains a BPE model on n_lines captions (already read and checked) and returns the
// serialized ModelProto in a malloc'd buffer (*model, *n). Nothing is written to disk.
// Errors are "<source>: ...".
int vqgpt_tokenizer_spm_train(const char *const *lines, size_t n_lines, int vocab_size,
                              int max_line_bytes, const char *source, void **model, size_t *n);

#ifdef __cplusplus
}
#endif

#endif
