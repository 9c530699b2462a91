#!/usr/bin/env bash
# tools/convert_taming.py on fake taming-transformers checkpoints (tests/test_convert_taming.py).
# Args: the vqgpt binary and the fixtures dir. Needs python3 with torch, PyYAML and numpy
# (Debian: python3-torch python3-yaml python3-numpy); skips only when torch is missing.
set -euo pipefail
vqgpt=$1
fixtures=$2
here=$(cd "$(dirname "$0")" && pwd)

# Debian's packages serve /usr/bin/python3, which may not be the python3 first on PATH.
py=""
for cand in python3 /usr/bin/python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import torch" >/dev/null 2>&1; then
    py=$cand
    break
  fi
done
if [ -z "$py" ]; then
  echo "skipped: python3-torch not installed (apt-get install python3-torch python3-yaml python3-numpy)"
  exit 0
fi

# The C cross-check (a converted VQGAN reconstructs like the fixture) needs the reconstruct command.
args=(--fixtures "$fixtures")
if "$vqgpt" reconstruct --help >/dev/null 2>&1; then
  args+=(--vqgpt "$vqgpt")
else
  echo "note: $vqgpt has no reconstruct command; C cross-check not run"
fi
exec "$py" "$here/test_convert_taming.py" "${args[@]}"
