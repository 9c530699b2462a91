#include <stdint.h>

#include "weights/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  vqgpt_json_free(vqgpt_json_parse((const char *)data, size));
  return 0;
}
