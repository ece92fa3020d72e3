#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make test: builds three configurations and runs every test.
#   build/       RelWithDebInfo: unit + integration (real redis-server, nginx)
#   build-asan/  ASan+UBSan: unit tests, and the CLI and daemon integration tests
#   build-tsan/  TSan: tests labelled tsan (threaded)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
fail=0

step() { echo; echo "==== $*"; }

step "lint: banned libc calls"
scripts/lint.sh || fail=1

step "default build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs" -L unit) || fail=1
(cd build && ctest --output-on-failure -L integ) || fail=1

step "ASan+UBSan build"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSLUICE_ASAN=ON >/dev/null
cmake --build build-asan -j "$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j "$jobs" -L unit) || fail=1
# The programs under ASan too: bad input to sluiced and the CLI must not
# crash or leak (a leak report makes the process exit non-zero).
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure \
    -R 'integ_test_(cli|vectors|daemon_badinput|daemon_contract|daemon_ops)$') || fail=1
# POST /json bad input and SIGHUP reloads of descriptor files, under ASan
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -R 'integ_test_rls_json$') || fail=1

step "TSan build"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DSLUICE_TSAN=ON >/dev/null
cmake --build build-tsan -j "$jobs"
(cd build-tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j "$jobs" -L tsan) || fail=1

echo
if [ $fail -ne 0 ]; then echo "make test: FAILED"; exit 1; fi
echo "make test: all passed"
