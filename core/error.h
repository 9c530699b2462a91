// Library error reporting, stb style: a failing call returns non-zero (or NULL) and leaves
// one human-readable line here. Only the CLI prints it.
#ifndef VQGPT_ERROR_H
#define VQGPT_ERROR_H

#include <stdbool.h>

// Formats the message for the current thread's last error; always returns -1 so that
// `return vqgpt_error("...")` reads naturally.
int vqgpt_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// "<path>: <message>" as vqgpt_error, with control characters (bytes below 0x20 and 0x7f) in
// the formatted message replaced by '?': text taken from a file cannot break the line. With
// ascii_only, bytes from 0x80 up too (raw binary, where they are not UTF-8).
int vqgpt_file_error(const char *path, bool ascii_only, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *vqgpt_last_error(void);
void vqgpt_clear_error(void);

#endif
