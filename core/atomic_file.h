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

// Refuses a target that exists and is not a regular file (a directory, a device, a FIFO, a
// socket or a symbolic link: renaming over it would replace it by a regular file), removes
// stale temporaries of the target (vqgpt_atomic_file_remove_stale), then creates the temporary.
int vqgpt_atomic_file_open(atomic_file *af, const char *path);
// Flushes, fsyncs and renames; on failure removes the temporary. Errors name the target path.
// The target is checked again just before the rename.
int vqgpt_atomic_file_commit(atomic_file *af);
// Discards the temporary (for error paths).
void vqgpt_atomic_file_abort(atomic_file *af);

// 0 if path does not exist or is a regular file; otherwise -1 with the error
// "<path>: cannot write: it exists and is a <kind>, not a regular file".
int vqgpt_atomic_file_check_target(const char *path);
// Removes "<path>.tmp.<pid>" files left by processes that no longer exist (a killed run):
// only regular files, only when kill(pid, 0) says there is no such process (a live process,
// even an unrelated one that reused the id, keeps its file). Returns how many were removed.
int vqgpt_atomic_file_remove_stale(const char *path);

#endif
