#include "data/image.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  image_rgb img;
  if (vqgpt_image_load(&img, fuzz_file(data, size)) == 0) vqgpt_image_free(&img);
  return 0;
}
