#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make test: builds three configurations and runs every test.
#   build/       RelWithDebInfo: unit + integration (real redis-server, nginx)
#   build-asan/  ASan+UBSan: unit tests, and the CLI and daemon integration tests
#   build-tsan/  TSan: tests labelled tsan (threaded)
#   build-fuzz/  clang + libFuzzer: each fuzz target over its seed corpus and
#                a few thousand more inputs (label fuzz; make fuzz runs longer)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
fail=0
failed=() # "phase: test names" of every phase that failed, printed last

step() { echo; echo "==== $*"; }

# phase DIR ctest-args...: runs ctest in DIR; when it fails, records the
# names of the failed tests (ctest's LastTestsFailed.log) under PHASE.
run_ctest() {
  local phase=$1 dir=$2 log names
  shift 2
  log="$dir/Testing/Temporary/LastTestsFailed.log"
  rm -f "$log"
  (cd "$dir" && ctest "$@") && return 0
  fail=1
  names=$(sed 's/^[0-9]*://' "$log" 2>/dev/null | paste -sd' ' -) || true
  failed+=("$phase: ${names:-(ctest failed before naming a test)}")
}

step "lint: banned libc calls"
scripts/lint.sh || { fail=1; failed+=("lint: scripts/lint.sh"); }

step "default build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs" || { echo "make test: FAILED: the default build does not compile"; exit 1; }
run_ctest unit build --output-on-failure -j "$jobs" -L unit
run_ctest integ build --output-on-failure -L integ

step "ASan+UBSan build"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSLUICE_ASAN=ON >/dev/null
cmake --build build-asan -j "$jobs" || { echo "make test: FAILED: the ASan build does not compile"; exit 1; }
ASAN_OPTIONS=detect_leaks=1 run_ctest "ASan unit" build-asan --output-on-failure -j "$jobs" -L unit
# The programs under ASan too: bad input to sluiced and the CLI must not
# crash or leak (a leak report makes the process exit non-zero).
ASAN_OPTIONS=detect_leaks=1 run_ctest "ASan integ" build-asan --output-on-failure \
  -R 'integ_test_(cli|vectors|daemon_badinput|daemon_contract|daemon_ops|rls_json|grpc_badinput)$'

step "TSan build"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DSLUICE_TSAN=ON >/dev/null
cmake --build build-tsan -j "$jobs" || { echo "make test: FAILED: the TSan build does not compile"; exit 1; }
TSAN_OPTIONS=halt_on_error=1 run_ctest TSan build-tsan --output-on-failure -j "$jobs" -L tsan

step "fuzz targets: seeds + ${SLUICE_FUZZ_RUNS:-20000} inputs each"
# A regression on an input boundary fails here: every crash the fuzzers
# found is a seed, and each target runs a few thousand new inputs.
if CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_FUZZ=ON \
  -DSLUICE_FUZZ_RUNS="${SLUICE_FUZZ_RUNS:-20000}" >/dev/null &&
  cmake --build build-fuzz -j "$jobs" --target fuzz_targets; then
  run_ctest fuzz build-fuzz --output-on-failure -L fuzz
else
  fail=1
  failed+=("fuzz: the fuzz targets do not build (clang, libfuzzer-14-dev)")
fi

echo
if [ $fail -ne 0 ]; then
  echo "make test: FAILED"
  for f in "${failed[@]}"; do echo "  failed in $f"; done
  exit 1
fi
echo "make test: all passed"
