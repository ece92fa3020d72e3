#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make bench: builds build/ and prints the benchmark tables.
#   1. embedded store (memory://): every algorithm, 1 and 2 threads, 1M
#      distinct keys and one hot key, measured with `sluice bench`;
#      bytes per key from bench_memory (bench/bench_memory.c) when present;
#      the same workload on rate-limiter-flexible's RateLimiterMemory (Node)
#      when node and npm are installed, and the ratio.
#   2. Redis stores (scripts/bench_redis.sh, when present).
#   3. HTTP daemon (scripts/bench_http.sh, when present).
#   4. gRPC daemon (scripts/bench_grpc.sh): ShouldRateLimit vs /v1/authorize.
# Knobs: BUILD (build directory, default build), SLUICE_BENCH_REQUESTS
# (decisions per run, default 2000000), SLUICE_BENCH_KEYS (distinct keys,
# default 1000000), SLUICE_BENCH_ONLY (sections to run: memory redis http grpc).
# Figures are of this machine at this moment; nothing here passes or fails
# on a number.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)
requests=${SLUICE_BENCH_REQUESTS:-2000000}
keys=${SLUICE_BENCH_KEYS:-1000000}
build=${BUILD:-build}
fail=0

step() { echo; echo "==== $*"; }
# SLUICE_BENCH_ONLY="memory redis http" (any subset) limits the sections run.
want() { [ -z "${SLUICE_BENCH_ONLY:-}" ] || [[ " $SLUICE_BENCH_ONLY " == *" $1 "* ]]; }

step "build ($build/, RelWithDebInfo)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
cmake --build "$build" -j "$jobs" >/dev/null || { cmake --build "$build" -j 1; exit 1; }
S="$root/$build/bin/sluice"
export BUILD=$build
CFG="$root/bench/bench.yaml"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT

# bench_row ALGORITHM THREADS KEYSET ARGS...: one `sluice bench` run, one table row.
re='^decisions_per_sec=([0-9]+) p50_us=([0-9.]+) p99_us=([0-9.]+) p999_us=([0-9.]+) allowed=([0-9]+) denied=([0-9]+) errors=([0-9]+)$'
row_fmt='%-15s %-7s %-8s %11s %11s %8s %8s %9s %9s %9s %6s\n'
bench_row() {
  local alg=$1 threads=$2 keyset=$3
  shift 3
  if ! "$S" bench --config "$CFG" --rule "$alg" --threads "$threads" --requests "$requests" "$@" \
      >"$tmp/out" 2>"$tmp/err"; then
    printf "$row_fmt" "$alg" "$threads" "$keyset" "FAILED" - - - - - - -
    sed 's/^/    /' "$tmp/err"
    fail=1
    return
  fi
  local last cpu
  last=$(tail -n 1 "$tmp/out")
  cpu=$(sed -n 's/.*(\([0-9]*\) decisions per CPU-second.*/\1/p' "$tmp/out")
  if [[ "$last" =~ $re ]]; then
    printf "$row_fmt" "$alg" "$threads" "$keyset" "${BASH_REMATCH[1]}" "${cpu:--}" "${BASH_REMATCH[2]}" \
      "${BASH_REMATCH[3]}" "${BASH_REMATCH[4]}" "${BASH_REMATCH[5]}" "${BASH_REMATCH[6]}" \
      "${BASH_REMATCH[7]}"
  else
    printf "$row_fmt" "$alg" "$threads" "$keyset" "BAD OUTPUT" - - - - - - -
    echo "    $last"
    fail=1
  fi
}

# ==== section: embedded store (memory://) ====================================
memory_section() {
  step "embedded store (memory://): $requests decisions per run, $(nproc) CPUs"
  echo "command: sluice bench --config bench/bench.yaml --rule <algorithm> --threads <T> --requests $requests (--keys $keys | --hot)"
  echo "latencies in microseconds (per decision, measured around sluice_decide)"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) (other work on the machine skews the figures)"
  echo "per_cpu_s: decisions per CPU-second of the sluice process (robust to other load)"
  printf "$row_fmt" algorithm threads keys "decisions/s" per_cpu_s p50_us p99_us p99.9_us allowed denied errors
  for alg in fixed_window sliding_window sliding_log token_bucket leaky_bucket multi; do
    for threads in 1 2; do
      bench_row "$alg" "$threads" "$keys" --keys "$keys"
      bench_row "$alg" "$threads" hot --hot
    done
  done

  # Bytes per key, from the store engineer's bench_memory program.
  if [ -f bench/bench_memory.c ]; then
    step "embedded store: memory per key ($build/bin/bench_memory)"
    if cmake --build "$build" --target bench_memory -j "$jobs" >/dev/null 2>"$tmp/err"; then
      "$build/bin/bench_memory" || fail=1
    else
      echo "bench_memory did not build:"; sed 's/^/    /' "$tmp/err"; fail=1
    fi
  fi

  # Baseline: rate-limiter-flexible (npm), RateLimiterMemory.consume().
  # Node's awaited consume() is slow enough that half the decisions suffice.
  rl_requests=$((requests > 1000000 ? 1000000 : requests))
  step "baseline: rate-limiter-flexible RateLimiterMemory (Node), $keys keys, $rl_requests decisions"
  if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    mkdir -p "$tmp/rlflex" && cp bench/rlflex.js "$tmp/rlflex/"
    if (cd "$tmp/rlflex" && npm init -y >/dev/null 2>&1 &&
        npm install --silent --no-audit --no-fund rate-limiter-flexible >/dev/null 2>"$tmp/npm.err"); then
      echo "node $(node --version), rate-limiter-flexible $(cd "$tmp/rlflex" && node -p 'require("rate-limiter-flexible/package.json").version')"
      if (cd "$tmp/rlflex" && node rlflex.js "$keys" "$rl_requests") >"$tmp/rl.out" 2>&1; then
        cat "$tmp/rl.out"
        rl=$(sed -n 's/^rlflex_decisions_per_sec=\([0-9]*\).*/\1/p' "$tmp/rl.out")
        # sluice on the same workload (same keys, same number of decisions)
        "$S" bench --config "$CFG" --rule fixed_window --keys "$keys" --requests "$rl_requests" \
          >"$tmp/fw.out" 2>/dev/null
        sl=$(sed -n 's/^decisions_per_sec=\([0-9]*\) .*/\1/p' "$tmp/fw.out")
        if [ -n "$rl" ] && [ "$rl" -gt 0 ] && [ -n "$sl" ] && [ "$sl" -gt 0 ]; then
          awk -v s="$sl" -v r="$rl" -v k="$keys" -v n="$rl_requests" 'BEGIN {
            printf "same workload (%d keys, %d decisions, 1 thread): sluice fixed_window %d/s, rate-limiter-flexible %d/s: ratio sluice/rlflex = %.1fx\n", k, n, s, r, s / r }'
        fi
      else
        echo "rlflex.js failed:"; sed 's/^/    /' "$tmp/rl.out"
      fi
    else
      echo "skipped: npm install rate-limiter-flexible failed (offline?)"; sed 's/^/    /' "$tmp/npm.err" | tail -n 5
    fi
  else
    echo "skipped: node/npm not installed (apt-get install nodejs npm to compare)"
  fi
}
want memory && memory_section
# ==== end section: embedded store ============================================

# ==== hook: Redis stores =====================================================
# The Redis engineer's tables: scripts/bench_redis.sh (uses $BUILD, default
# build/, and prints its own tables).  Append here rather than editing the
# section above.
if want redis && [ -x scripts/bench_redis.sh ]; then
  step "Redis stores"
  scripts/bench_redis.sh || fail=1
fi
# ==== end hook: Redis stores =================================================
if want cluster && [ -x scripts/bench_cluster.sh ]; then step "Redis Cluster (redis+cluster://) vs one node"; scripts/bench_cluster.sh || fail=1; fi

# Native Redis module (sluice_redis.so): Redis CPU per decision, module vs Lua vs INCR.
if want module && [ -x scripts/bench_module.sh ]; then step "Redis engines: native module vs Lua"; scripts/bench_module.sh || fail=1; fi

# Deny cache: Redis commands per decision with ?deny_cache=on vs off, 90% of the requests from 10 denied keys.
if want deny_cache && [ -x scripts/bench_deny_cache.sh ]; then step "Redis deny cache (deny_cache=on vs off)"; scripts/bench_deny_cache.sh || fail=1; fi

# ==== hook: HTTP daemon ======================================================
# The HTTP engineer's tables: scripts/bench_http.sh (sluiced under wrk).
if want http && [ -x scripts/bench_http.sh ]; then
  step "HTTP daemon (sluiced)"
  scripts/bench_http.sh || fail=1
fi
# ==== end hook: HTTP daemon ==================================================

# gRPC (Envoy RLS ShouldRateLimit over HTTP/2, h2load) next to /v1/authorize (HTTP/1.1, wrk).
if want grpc && [ -x scripts/bench_grpc.sh ]; then step "gRPC daemon (sluiced ShouldRateLimit vs /v1/authorize)"; scripts/bench_grpc.sh || fail=1; fi

echo
if [ $fail -ne 0 ]; then echo "make bench: some benchmarks failed"; exit 1; fi
echo "make bench: done"
