#include "core/atomic_file.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

static void release(atomic_file *af) {
  free(af->path);
  free(af->tmp_path);
  af->path = af->tmp_path = NULL;
  af->fp = NULL;
}

static const char *kind_of(mode_t m) {
  if (S_ISLNK(m)) return "symbolic link";
  if (S_ISDIR(m)) return "directory";
  if (S_ISCHR(m)) return "character device";
  if (S_ISBLK(m)) return "block device";
  if (S_ISFIFO(m)) return "FIFO";
  if (S_ISSOCK(m)) return "socket";
  return "special file";
}

int vqgpt_atomic_file_check_target(const char *path) {
  struct stat sb;
  if (lstat(path, &sb) != 0 || S_ISREG(sb.st_mode)) return 0;  // absent (or unreadable: open says)
  return vqgpt_error(
      "%s: cannot write: it exists and is a %s, not a regular file (refusing to "
      "replace it)",
      path, kind_of(sb.st_mode));
}

// "<base>.tmp.<digits>" -> the pid; 0 when name is not a temporary of base.
static long temp_pid(const char *name, const char *base) {
  size_t n = strlen(base);
  if (strncmp(name, base, n) || strncmp(name + n, ".tmp.", 5)) return 0;
  const char *d = name + n + 5;
  if (!*d) return 0;
  long pid = 0;
  for (; *d; d++) {
    if (*d < '0' || *d > '9' || pid > 99999999) return 0;
    pid = pid * 10 + (*d - '0');
  }
  return pid;
}

int vqgpt_atomic_file_remove_stale(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  size_t dir_len = slash ? (size_t)(slash - path) : 0;
  char *dir = malloc(dir_len + 2);
  if (!dir || !*base) {
    free(dir);
    return 0;
  }
  if (slash) {
    memcpy(dir, path, dir_len);
    dir[dir_len ? dir_len : 1] = '\0';
    if (!dir_len) dir[0] = '/';
  } else {
    strcpy(dir, ".");
  }
  int removed = 0;
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    long pid = temp_pid(e->d_name, base);
    if (pid <= 0 || pid == (long)getpid()) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
    size_t n = strlen(dir) + strlen(e->d_name) + 2;
    char *full = malloc(n);
    if (!full) break;
    snprintf(full, n, "%s/%s", dir, e->d_name);
    struct stat sb;
    if (lstat(full, &sb) == 0 && S_ISREG(sb.st_mode) && unlink(full) == 0) removed++;
    free(full);
  }
  if (d) closedir(d);
  free(dir);
  return removed;
}

int vqgpt_atomic_file_open(atomic_file *af, const char *path) {
  memset(af, 0, sizeof *af);
  if (vqgpt_atomic_file_check_target(path)) return -1;
  vqgpt_atomic_file_remove_stale(path);
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

int vqgpt_atomic_file_commit(atomic_file *af) {
  int failed = ferror(af->fp) || fflush(af->fp) != 0 || fsync(fileno(af->fp)) != 0;
  int e = errno;
  if (fclose(af->fp) != 0 && !failed) {
    failed = 1;
    e = errno;
  }
  // Checked again: the target may have been replaced while the output was written.
  if (!failed && vqgpt_atomic_file_check_target(af->path)) {
    unlink(af->tmp_path);
    release(af);
    return -1;
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

void vqgpt_atomic_file_abort(atomic_file *af) {
  if (af->fp) fclose(af->fp);
  if (af->tmp_path) unlink(af->tmp_path);
  release(af);
}
