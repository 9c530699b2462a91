# Shared helpers of the CLI tests (sourced): run in a fresh temporary directory, count checks
# and failures, and check the project's error standard. A script turns its arguments into
# absolute paths before sourcing this (it changes directory).
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
failures=0
checks=0
# Debian's numpy serves /usr/bin/python3, which may not be the python3 first on PATH.
PY=python3
$PY -c "import numpy" 2>/dev/null || PY=/usr/bin/python3

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# ok <description> <command...>: must exit 0 (stdout in out.txt, stderr in err.txt).
ok() {
  local what=$1
  shift
  checks=$((checks + 1))
  if ! "$@" >out.txt 2>err.txt; then
    fail "$what: exit $?: $(tail -n 3 err.txt)"
    return 1
  fi
  return 0
}

# check <description> [!] <command...>: one check, passed when the command succeeds (with "!":
# when it fails); the description is the failure message. Nothing is redirected, so it can test
# the out.txt/err.txt of the last ok or bad: check "..." grep -q "step 8/8" err.txt.
check() {
  local what=$1 negate=0
  shift
  if [ "$1" = "!" ]; then
    negate=1
    shift
  fi
  checks=$((checks + 1))
  local status=0
  "$@" || status=1
  if [ $status -ne $negate ]; then
    fail "$what"
    return 1
  fi
  return 0
}

# bad <description> <pattern> <command...>: the project's error standard. The command must exit
# with 1..123 (124 is timeout(1)'s, 125-127 a command that could not run, 128 and more a
# signal), print nothing on stdout and exactly one line on stderr that starts with $ERR_PREFIX
# ("vqgpt " unless set) and contains pattern (a fixed string), and leave none of the files of
# $NOFILES (globs: "o.npy*" also catches o.npy's temporaries) nor a temporary file here.
# Either variable may be given for one call: NOFILES="x.npy" bad ...
bad() { refusal one "$@"; }

# bad_last: the same for commands that may print progress first (training, sampling): the last
# stderr line is the error.
bad_last() { refusal last "$@"; }

refusal() {
  local mode=$1 what=$2 pattern=$3
  shift 3
  checks=$((checks + 1))
  rm -f ${NOFILES-}
  "$@" >out.txt 2>err.txt
  local rc=$?
  local lines line prefix=${ERR_PREFIX:-vqgpt }
  lines=$(wc -l <err.txt)
  line=$(tail -n 1 err.txt)
  local problem=""
  if [ $rc -eq 0 ] || [ $rc -ge 124 ]; then
    problem="exit $rc: $(tail -n 3 err.txt)"
  elif [ "$mode" = one ] && [ "$lines" -ne 1 ]; then
    problem="$lines lines on stderr: $(cat err.txt)"
  elif [[ "$line" != "$prefix"* ]] || [[ "$line" != *"$pattern"* ]]; then
    problem="message '$line' does not start with '$prefix' or lacks '$pattern'"
  elif [ -s out.txt ]; then
    problem="printed on stdout: $(head -n 3 out.txt)"
  fi
  local f
  for f in ${NOFILES-}; do
    if [ -e "$f" ] || [ -L "$f" ]; then problem="$problem${problem:+; }left $f behind"; fi
  done
  if ls ./*.tmp.* >/dev/null 2>&1; then problem="$problem${problem:+; }temporary file left"; fi
  # One failure per check, so that the summary's counts add up.
  if [ -n "$problem" ]; then
    fail "$what: $problem"
    return 1
  fi
  return 0
}

# The shape tuple of an .npy file's header, e.g. "(2, 8, 8)".
npy_shape() {
  head -c 128 "$1" | tr -d '\0' | grep -ao "'shape': ([0-9, ]*)" | sed "s/'shape': //"
}

# The size of a PNG file from its header, e.g. "48x32"; fails on a file that is not a PNG.
png_size() {
  local hex
  hex=$(head -c 24 "$1" | od -An -tx1 | tr -d ' \n')
  [ "${hex:0:16}" = "89504e470d0a1a0a" ] && [ ${#hex} -eq 48 ] || return 1
  echo "$((16#${hex:32:8}))x$((16#${hex:40:8}))"
}

is_png() {
  png_size "$1" >/dev/null
}

# Prints the summary line and exits with the test's status.
finish() {
  echo "$1: $((checks - failures)) passed, $failures failed"
  [ "$failures" -eq 0 ]
  exit $?
}
