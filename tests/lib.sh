# Shared helpers of the CLI tests (sourced): run in a fresh temporary directory, count checks
# and failures, and check the project's error standard.
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

# bad <description> <pattern> <command...>: must exit non-zero with exactly one stderr line
# starting "vqgpt " and matching pattern, and must not create the files named in $NOFILES.
bad() {
  local what=$1 pattern=$2
  shift 2
  checks=$((checks + 1))
  rm -f $NOFILES
  "$@" >out.txt 2>err.txt
  local rc=$?
  local lines
  lines=$(wc -l <err.txt)
  if [ $rc -eq 0 ]; then
    fail "$what: exit 0"
  elif [ "$lines" -ne 1 ]; then
    fail "$what: $lines lines on stderr: $(cat err.txt)"
  elif ! grep -q '^vqgpt ' err.txt || ! grep -qi -- "$pattern" err.txt; then
    fail "$what: message '$(cat err.txt)' lacks '$pattern'"
  fi
  for f in $NOFILES; do
    if [ -e "$f" ]; then
      fail "$what: left $f behind"
    fi
  done
  if ls ./*.tmp.* >/dev/null 2>&1; then fail "$what: temporary file left"; fi
}

# The shape tuple of an .npy file's header, e.g. "(2, 8, 8)".
npy_shape() {
  head -c 128 "$1" | tr -d '\0' | grep -ao "'shape': ([0-9, ]*)" | sed "s/'shape': //"
}

# Prints the summary line and exits with the test's status.
finish() {
  echo "$1: $((checks - failures)) passed, $failures failed"
  [ "$failures" -eq 0 ]
  exit $?
}
