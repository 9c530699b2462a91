// safetensors files: read (mmap, every header field validated before use) and write
// (to a temporary file, then renamed, so a crash never leaves a half-written model).
#ifndef VQGPT_SAFETENSORS_H
#define VQGPT_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef enum { ST_F32, ST_F16, ST_BF16, ST_I32, ST_I64, ST_U8, ST_I8, ST_F64, ST_BOOL } st_dtype;

typedef struct {
  char *name;
  st_dtype dtype;
  int ndim;
  int64_t shape[ST_MAX_DIMS];
  size_t numel;
  const uint8_t *data;  // points into the mapping
  size_t nbytes;
} st_tensor;

typedef struct {
  char *path;
  void *map;
  size_t map_size;
  st_tensor *tensors;
  size_t n_tensors;
  char **meta_keys, **meta_values;  // __metadata__ (string values only, per the format)
  size_t n_meta;
  unsigned char *used;  // (n_tensors) set by the readers: which tensors a loader took
} st_file;

// Opens and validates: header length within the file, JSON well-formed, every tensor with a
// known dtype, shape product matching its byte range, offsets inside the data section, the
// tensors covering the data section exactly (no overlap, no gap, no trailing bytes), no
// duplicate names, __metadata__ an object of strings. Tensors keep the
// header's order. On failure returns -1, *f is left empty (vqgpt_st_close on it is harmless), and
// the error reads "<path>: <problem>".
int vqgpt_st_open(st_file *f, const char *path);
void vqgpt_st_close(st_file *f);

const st_tensor *vqgpt_st_find(const st_file *f, const char *name);
const char *vqgpt_st_meta(const st_file *f, const char *key);  // NULL if absent
size_t vqgpt_st_dtype_size(st_dtype t);
// float -> IEEE half bits, round to nearest even (as torch's .half()).
uint16_t vqgpt_st_f32_to_f16(float f);
const char *vqgpt_st_dtype_name(st_dtype t);

// Copies tensor `name` into dst as float32 (from F32/F16/BF16/F64), checking that it exists
// and has exactly the given shape. Errors read "<path>: tensor '<name>' ...".
int vqgpt_st_read_f32(const st_file *f, const char *name, float *dst, int ndim,
                      const int64_t *shape);
// As above for integers (I32/I64 into int32, range-checked).
// For both readers, shape may be NULL to accept any shape: `ndim` is then the element count
// that dst holds, and the tensor must have exactly that many elements.
int vqgpt_st_read_i32(const st_file *f, const char *name, int32_t *dst, int ndim,
                      const int64_t *shape);
// vqgpt_st_read_f32 for weights and training state: a NaN or an infinity is an error naming the
// tensor and the index.
int vqgpt_st_read_weights(const st_file *f, const char *name, float *dst, int ndim,
                          const int64_t *shape);

// Model loaders take every tensor of a file, so that a file with tensors its config does not
// describe (a config without attention for a file with attention weights, say) is refused
// rather than half-read. The readers above mark the tensors they read; vqgpt_st_mark_used marks one
// by hand (false if there is no such tensor). vqgpt_st_check_all_used then fails naming the first
// tensor neither read nor matching one of the `accept` patterns (a NULL-terminated list, may be
// NULL; '*' in a pattern matches any run of characters, e.g. "opt.*", "blocks.*.attn.mask"):
// what the project writes on purpose beside a model (optimizer state, buffers).
bool vqgpt_st_mark_used(const st_file *f, const char *name);
int vqgpt_st_check_all_used(const st_file *f, const char *const *accept);
// The file's "format" metadata is `want`; errors name the file, the format found and the one
// expected, with `what` saying what the command needed ("a VQGAN").
int vqgpt_st_check_format(const st_file *f, const char *want, const char *what);

// Writer: collects tensors (data is referenced, not copied, until vqgpt_st_writer_save returns) and
// metadata, then writes header + data to "<path>.tmp.<pid>", fsyncs, and renames onto path.
typedef struct st_writer st_writer;
st_writer *vqgpt_st_writer_new(void);
int vqgpt_st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim,
                        const int64_t *shape, const void *data);
int vqgpt_st_writer_meta(st_writer *w, const char *key, const char *value);
// Stores every F32 tensor as F16 or BF16 (round to nearest even) when saving; ST_F32 (the
// default) stores them as they are. Other types are unaffected.
void vqgpt_st_writer_store_floats_as(st_writer *w, st_dtype t);
int vqgpt_st_writer_save(st_writer *w, const char *path);
void vqgpt_st_writer_free(st_writer *w);

#endif
