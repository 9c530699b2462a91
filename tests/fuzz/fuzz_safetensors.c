#include "fuzz_util.h"
#include "weights/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  st_file f;
  if (vqgpt_st_open(&f, fuzz_file(data, size)) == 0) {
    for (size_t i = 0; i < f.n_tensors; i++) {
      float v[64];
      if (f.tensors[i].numel <= 64)
        vqgpt_st_read_f32(&f, f.tensors[i].name, v, (int)f.tensors[i].numel, NULL);
    }
    vqgpt_st_close(&f);
  }
  return 0;
}
