// Error reporting: messages that wrap the previous one (as callers do to add the path).
#include "core/blas.h"
#include "core/error.h"
#include "test_util.h"

int main(int argc, char **argv) {
  (void)argc;
  vqgpt_blas_setup(argv);
  vqgpt_clear_error();
  CHECK(strcmp(vqgpt_last_error(), "unknown error") == 0);
  CHECK(vqgpt_error("value expected at byte %d", 5) == -1);
  CHECK(strcmp(vqgpt_last_error(), "value expected at byte 5") == 0);
  vqgpt_error("%s: config is not valid JSON (%s)", "model.safetensors", vqgpt_last_error());
  CHECKF(strcmp(vqgpt_last_error(),
                "model.safetensors: config is not valid JSON (value expected at byte 5)") == 0,
         "got '%s'", vqgpt_last_error());
  // Long messages are cut, not overflowed.
  char big[3000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  vqgpt_error("%s", big);
  vqgpt_error("%s|%s", vqgpt_last_error(), vqgpt_last_error());
  CHECK(strlen(vqgpt_last_error()) == 1023 && vqgpt_last_error()[0] == 'x');
  return test_finish("test_error");
}
