// Library error reporting, stb style: a failing call returns non-zero (or NULL) and leaves
// one human-readable line here. Only the CLI prints it.
#ifndef VQGPT_ERROR_H
#define VQGPT_ERROR_H

// Formats the message for the current thread's last error; always returns -1 so that
// `return vqgpt_error("...")` reads naturally.
int vqgpt_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *vqgpt_last_error(void);
void vqgpt_clear_error(void);

#endif
