// Crash-safe file replacement: write everything to a temporary file beside the target, fsync,
// then rename over it. A failure at any point removes the temporary and leaves the old file.
#ifndef VQGPT_ATOMIC_FILE_H
#define VQGPT_ATOMIC_FILE_H

#include <stdbool.h>
#include <stdio.h>

typedef struct {
  FILE *fp;
  char *path;      // the target
  char *tmp_path;  // "<path>.tmp.<pid>"
} atomic_file;

int atomic_file_open(atomic_file *af, const char *path);
// Flushes, fsyncs and renames; on failure removes the temporary. Errors name the target path.
int atomic_file_commit(atomic_file *af);
// Discards the temporary (for error paths).
void atomic_file_abort(atomic_file *af);

#endif
