#include "data/npy.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int32_t *codes = NULL;
  int ndim;
  int64_t shape[NPY_MAX_DIMS];
  if (vqgpt_npy_read_i32(fuzz_file(data, size), &codes, &ndim, shape) == 0) free(codes);
  return 0;
}
