#include <stdint.h>

#include "weights/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  json_free(json_parse((const char *)data, size));
  return 0;
}
