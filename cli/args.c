#include "cli/args.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/atomic_file.h"
#include "core/error.h"

// Where errors go: stderr, or for a quiet rank a copy of the stderr it was started with.
static FILE *error_stream;
static int quiet_rank;

void cli_quiet_rank(int rank) {
  int fd = dup(STDERR_FILENO);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f) return;  // stays loud: better every line twice than an error lost
  setvbuf(f, NULL, _IONBF, 0);
  if (!freopen("/dev/null", "w", stderr) || !freopen("/dev/null", "w", stdout)) {
    fclose(f);
    return;
  }
  error_stream = f;
  quiet_rank = rank;
}

int cli_fail(const char *command, const char *fmt, ...) {
  FILE *f = error_stream ? error_stream : stderr;
  // The line is formatted first and written with one call: stderr is unbuffered, and under
  // mpirun separate writes of the pieces interleave with other processes' output.
  char line[8192];
  int n = error_stream ? snprintf(line, sizeof line, "vqgpt %s (rank %d): ", command, quiet_rank)
                       : snprintf(line, sizeof line, "vqgpt %s: ", command);
  if (n < 0 || n >= (int)sizeof line) n = 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  fprintf(f, "%s\n", line);
  return 1;
}

bool cli_require(const char *command, const char *name, const char *value) {
  if (value && value[0]) return true;
  cli_fail(command, "missing required option --%s (see --help)", name);
  return false;
}

bool cli_dir_writable(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return access(".", W_OK) == 0;
  size_t n = (size_t)(slash - path);
  char *dir = malloc(n + 2);
  if (!dir) return false;
  memcpy(dir, path, n);
  dir[n ? n : 1] = '\0';
  if (!n) dir[0] = '/';
  bool ok = access(dir, W_OK) == 0;
  free(dir);
  return ok;
}

bool cli_output_ok(const char *command, const char *path) {
  vqgpt_atomic_file_remove_stale(path);
  if (vqgpt_atomic_file_check_target(path)) {
    cli_fail(command, "%s", vqgpt_last_error());
    return false;
  }
  if (!cli_dir_writable(path)) {
    cli_fail(command, "%s: directory missing or not writable", path);
    return false;
  }
  return true;
}

static void print_help(const char *command, const char *summary, const cli_opt *opts, int n) {
  printf("usage: vqgpt %s [options]\n%s\n\noptions:\n", command, summary);
  for (int i = 0; i < n; i++) {
    const cli_opt *o = &opts[i];
    char def[64] = "";
    switch (o->kind) {
      case OPT_STRING:
        if (*(const char **)o->dest)
          snprintf(def, sizeof def, " (default %s)", *(const char **)o->dest);
        break;
      case OPT_INT:
        if (o->min || o->max)
          snprintf(def, sizeof def, " (%ld to %ld, default %ld)", o->min, o->max, *(long *)o->dest);
        else
          snprintf(def, sizeof def, " (default %ld)", *(long *)o->dest);
        break;
      case OPT_FLOAT:
        snprintf(def, sizeof def, " (default %g)", *(double *)o->dest);
        break;
      case OPT_FLAG:
        break;
    }
    printf("  --%-16s %s%s\n", o->name, o->help, def);
  }
  printf("  --%-16s %s\n", "help", "show this help");
}

static bool parse_value(const char *command, const cli_opt *o, const char *text) {
  char *end = NULL;
  errno = 0;
  if (o->kind == OPT_INT) {
    long v = strtol(text, &end, 10);
    if (end == text || *end) {
      cli_fail(command, "--%s expects an integer, got '%s'", o->name, text);
      return false;
    }
    long lo = o->min || o->max ? o->min : INT_MIN, hi = o->min || o->max ? o->max : INT_MAX;
    if (errno == ERANGE || v < lo || v > hi) {
      cli_fail(command, "--%s must be an integer in [%ld, %ld], got '%s'", o->name, lo, hi, text);
      return false;
    }
    *(long *)o->dest = v;
  } else if (o->kind == OPT_FLOAT) {
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v)) {
      cli_fail(command, "--%s expects a number, got '%s'", o->name, text);
      return false;
    }
    *(double *)o->dest = v;
  } else {
    *(const char **)o->dest = text;
  }
  return true;
}

cli_status cli_parse(const char *command, const char *summary, int argc, char **argv,
                     const cli_opt *opts, int n_opts) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      print_help(command, summary, opts, n_opts);
      return CLI_HELP;
    }
    if (strncmp(a, "--", 2) != 0) {
      cli_fail(command, "unexpected argument '%s' (see --help)", a);
      return CLI_ERROR;
    }
    const cli_opt *o = NULL;
    for (int j = 0; j < n_opts; j++)
      if (!strcmp(a + 2, opts[j].name)) o = &opts[j];
    if (!o) {
      cli_fail(command, "unknown option '%s' (see --help)", a);
      return CLI_ERROR;
    }
    if (o->given) *o->given = true;
    if (o->kind == OPT_FLAG) {
      *(bool *)o->dest = true;
      continue;
    }
    if (i + 1 >= argc) {
      cli_fail(command, "option --%s needs a value", o->name);
      return CLI_ERROR;
    }
    if (!parse_value(command, o, argv[++i])) return CLI_ERROR;
  }
  return CLI_OK;
}
