#!/usr/bin/env bash
# The test command: an optimised build with every test, the unit tests again under
# AddressSanitizer + UBSan, then a short fuzzing run of every reader.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs" 2>&1 | grep -E "warning:|error:|Error [0-9]" && { echo "build produced warnings" >&2; exit 1; }
ctest --test-dir build --output-on-failure -j"$jobs"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DVQGPT_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs" 2>&1 | grep -E "warning:|error:|Error [0-9]" && { echo "sanitizer build produced warnings" >&2; exit 1; }
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -j"$jobs" -L unit
# The readers under libFuzzer (clang, ASan + UBSan), 15 s each from the seed corpora.
bash tests/fuzz/run.sh
