#include "core/atomic_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"

static void release(atomic_file *af) {
  free(af->path);
  free(af->tmp_path);
  af->path = af->tmp_path = NULL;
  af->fp = NULL;
}

int atomic_file_open(atomic_file *af, const char *path) {
  memset(af, 0, sizeof *af);
  size_t n = strlen(path) + 32;
  af->path = strdup(path);
  af->tmp_path = malloc(n);
  if (!af->path || !af->tmp_path) {
    release(af);
    return vqgpt_error("%s: out of memory", path);
  }
  snprintf(af->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
  af->fp = fopen(af->tmp_path, "wb");
  if (!af->fp) {
    int e = errno;
    release(af);
    return vqgpt_error("%s: cannot write: %s", path, strerror(e));
  }
  return 0;
}

int atomic_file_commit(atomic_file *af) {
  int failed = ferror(af->fp) || fflush(af->fp) != 0 || fsync(fileno(af->fp)) != 0;
  int e = errno;
  if (fclose(af->fp) != 0 && !failed) {
    failed = 1;
    e = errno;
  }
  if (!failed && rename(af->tmp_path, af->path) != 0) {
    failed = 1;
    e = errno;
  }
  if (failed) {
    unlink(af->tmp_path);
    vqgpt_error("%s: cannot write: %s", af->path, strerror(e ? e : EIO));
  }
  release(af);
  return failed ? -1 : 0;
}

void atomic_file_abort(atomic_file *af) {
  if (af->fp) fclose(af->fp);
  if (af->tmp_path) unlink(af->tmp_path);
  release(af);
}
