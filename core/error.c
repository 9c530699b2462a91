#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[1024];

int vqgpt_error(const char *fmt, ...) {
  // Formatted aside first: callers wrap the previous message, passing vqgpt_last_error() as
  // an argument, and vsnprintf into the buffer it reads from would garble it.
  char msg[sizeof last_error];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  memcpy(last_error, msg, sizeof msg);
  return -1;
}

int vqgpt_file_error(const char *path, bool ascii_only, const char *fmt, ...) {
  char msg[sizeof last_error];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  for (char *c = msg; *c; c++) {
    unsigned char u = (unsigned char)*c;
    if (u < 0x20 || u == 0x7f || (ascii_only && u > 0x7f)) *c = '?';
  }
  return vqgpt_error("%s: %s", path, msg);
}

const char *vqgpt_last_error(void) { return last_error[0] ? last_error : "unknown error"; }

void vqgpt_clear_error(void) { last_error[0] = '\0'; }
