#include "core/regular_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"

const char *vqgpt_file_kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a named pipe";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISLNK(m)) return "a symbolic link";
  return "not a regular file";
}

int vqgpt_open_regular(const char *path, struct stat *st) {
  // O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting; O_NOCTTY: a
  // terminal given as an input does not become ours.
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return vqgpt_file_error(path, false, "cannot open: %s", strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    int e = errno;
    close(fd);
    return vqgpt_file_error(path, false, "cannot stat: %s", strerror(e));
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    return vqgpt_file_error(path, false, "is %s, not a regular file", vqgpt_file_kind(sb.st_mode));
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
    int e = errno;
    close(fd);
    return vqgpt_file_error(path, false, "cannot set blocking mode: %s", strerror(e));
  }
  if (st) *st = sb;
  return fd;
}

FILE *vqgpt_fopen_regular(const char *path, struct stat *st) {
  int fd = vqgpt_open_regular(path, st);
  if (fd < 0) return NULL;
  FILE *fp = fdopen(fd, "rb");
  if (!fp) {
    int e = errno;
    close(fd);
    vqgpt_file_error(path, false, "cannot open: %s", strerror(e));
  }
  return fp;
}
