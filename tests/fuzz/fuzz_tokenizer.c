#include <stdint.h>

#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  vqgpt_tokenizer *tok = vqgpt_tokenizer_load_bytes(data, size, "fuzz");
  if (tok) {
    int32_t ids[64];
    int n;
    vqgpt_tokenizer_encode(tok, "a red sneaker and a blue bag", ids, 64, &n);
    vqgpt_tokenizer_free(tok);
  }
  return 0;
}
