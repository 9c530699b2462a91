// libFuzzer harnesses: the readers take paths, so each input is written to one temporary file
// per process first. Built only with -DVQGPT_FUZZ=ON and clang (tests/fuzz/run.sh).
#ifndef VQGPT_FUZZ_UTIL_H
#define VQGPT_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *fuzz_file(const uint8_t *data, size_t size) {
  static char path[64];
  if (!path[0]) snprintf(path, sizeof path, "/tmp/vqgpt_fuzz_%d.bin", (int)getpid());
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  if (size && fwrite(data, 1, size, f) != size) abort();
  fclose(f);
  return path;
}

#endif
