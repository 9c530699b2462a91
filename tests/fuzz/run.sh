#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, ASan + UBSan) and fuzzes each reader from its seed
# corpus in tests/fuzz/corpus for SECONDS seconds (default 15; CI runs the default, a longer
# run is e.g. `SECONDS_EACH=1800 bash tests/fuzz/run.sh`). Any crash, leak or sanitizer report
# fails the run and leaves the input in build-fuzz/crashes/.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${SECONDS_EACH:-15}
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DVQGPT_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_safetensors fuzz_npy fuzz_json fuzz_image fuzz_tokenizer 2>&1 |
  grep -E "error:" && exit 1
mkdir -p build-fuzz/crashes
passed=0
failed=0
for t in safetensors npy json image tokenizer; do
  work=build-fuzz/corpus-$t
  rm -rf "$work" && cp -r tests/fuzz/corpus/$t "$work"
  max_len=65536
  [ $t = tokenizer ] && max_len=300000  # a seed model is ~250 kB
  if ASAN_OPTIONS=detect_leaks=1 build-fuzz/fuzz_$t "$work" -max_total_time="$seconds" -max_len=$max_len \
      -rss_limit_mb=4096 -artifact_prefix=build-fuzz/crashes/$t- -print_final_stats=1 >build-fuzz/$t.log 2>&1; then
    echo "fuzz $t: $(grep -o 'stat::number_of_executed_units: *[0-9]*' build-fuzz/$t.log | grep -o '[0-9]*$') runs, no finding"
    passed=$((passed + 1))
  else
    echo "FAIL: fuzz $t: $(grep -m1 -E 'ERROR|SUMMARY|deadly' build-fuzz/$t.log)"
    failed=$((failed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
