// Opening input files safely: without blocking (a FIFO given as an input would otherwise wait
// forever for a writer) and only if they are regular files (not a directory, FIFO, device or
// socket). Every reader of user-given paths opens through here.
#ifndef VQGPT_REGULAR_FILE_H
#define VQGPT_REGULAR_FILE_H

#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>  // mode_t also without POSIX feature macros

// A read-only descriptor (O_CLOEXEC, blocking mode restored) of the regular file at path, or
// -1 with one error line "<path>: ..." (vqgpt_last_error). st, if not NULL, receives its fstat.
int vqgpt_open_regular(const char *path, struct stat *st);
// The same as a FILE* ("rb"), or NULL.
FILE *vqgpt_fopen_regular(const char *path, struct stat *st);
// "a directory", "a named pipe", ... for a file type that is not a regular file.
const char *vqgpt_file_kind(mode_t mode);

#endif
