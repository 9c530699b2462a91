// Option parsing shared by the subcommands: "--name value" and "--flag", with typed,
// checked conversion and a generated --help.
#ifndef VQGPT_CLI_ARGS_H
#define VQGPT_CLI_ARGS_H

#include <stdbool.h>

typedef enum { OPT_STRING, OPT_INT, OPT_FLOAT, OPT_FLAG } cli_opt_kind;

typedef struct {
  const char *name;  // without the leading "--"
  cli_opt_kind kind;
  void *dest;        // const char **, long *, double *, or bool *
  const char *help;  // one line; the default is the value already in *dest
  // OPT_INT only: the accepted range [min, max], shown in --help. Left out (both 0), the range
  // is that of an int, so that no value is truncated where it is converted.
  long min, max;
  bool *given;  // optional: set when the option appears on the command line
} cli_opt;

typedef enum { CLI_OK, CLI_HELP, CLI_ERROR } cli_status;

// Parses argv[1..argc) against opts. On CLI_HELP the help text has been printed to stdout;
// on CLI_ERROR one line "vqgpt <command>: <problem>" has been printed to stderr.
cli_status cli_parse(const char *command, const char *summary, int argc, char **argv,
                     const cli_opt *opts, int n_opts);

// Prints "vqgpt <command>: <message>" to stderr and returns 1, the exit status for errors.
// On a quiet rank: "vqgpt <command> (rank N): <message>".
int cli_fail(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// The directory that will receive `path` exists and is writable: checked before long work, so
// that a run does not fail at its first save.
bool cli_dir_writable(const char *path);

// Before work whose result goes to `path`: removes temporaries of earlier, killed runs
// ("<path>.tmp.<pid>" of processes that are gone), refuses a path that exists and is not a
// regular file (a directory, device, FIFO or symbolic link would be replaced by the output),
// and checks that the directory is writable. Prints the error and returns false on failure.
bool cli_output_ok(const char *command, const char *path);

// For ranks other than 0 of a data-parallel job: progress (stderr) and stdout are dropped,
// rank 0 reports for the job; errors (cli_fail) are still printed, naming the rank.
void cli_quiet_rank(int rank);

// Requires a string option to have been given; prints the error otherwise.
bool cli_require(const char *command, const char *name, const char *value);

#endif
