#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make bench, deny cache section (called by scripts/bench.sh): on its own
# redis-server (free loopback port), the issue's workload "90% of the
# requests from 10 denied keys" decided with ?deny_cache=on and then
# ?deny_cache=off, in the same run on the same server:
#   - 90%: `sluice bench --rule denied --keys 10` (token bucket, 10 per hour
#     per key: after the first 100 decisions every one is denied);
#   - 10%: `sluice bench --rule open --keys 100000` (mostly admitted);
# and prints, per mode, Redis commands per decision (INFO commandstats:
# EVALSHA, and all commands the server ran including those the script
# calls, divided by the decisions made), Redis CPU per
# decision (INFO cpu, user+sys) and decisions/s of each part, then the
# ratio off/on of commands per decision.  Knobs: BUILD (default build),
# SLUICE_BENCH_DENY_N (decisions per mode, default 500000), concurrency 64.
# Nothing passes or fails on a number; a run that breaks exits 1.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${BUILD:-build}
n=${SLUICE_BENCH_DENY_N:-500000}
S="$root/$build/bin/sluice"
for t in redis-server redis-cli; do
  command -v $t >/dev/null || { echo "skipped: $t not installed"; exit 0; }
done
[ -x "$S" ] || { echo "bench_deny_cache: $S missing (build first)"; exit 1; }

. "$root/tests/integ/redis_lib.sh"
redis_lib_init
redis_start dc
P=$RL_PORT_dc
URL="redis://127.0.0.1:$P"
cat >"$RL_DIR/dc.yaml" <<'Y'
timeout_ms: 1000
on_store_error: allow
rules:
  - name: denied
    limits: [ { algorithm: token_bucket, limit: 10, window: 1h } ]
  - name: open
    limits: [ { algorithm: token_bucket, limit: 1000000, window: 1h } ]
Y
# calls of every command the server ran; used CPU (user+sys) in microseconds
calls() { rcli dc INFO commandstats | tr -d '\r' | sed -n "s/^cmdstat_${1:-[^:]*}:calls=\([0-9]*\).*/\1/p" | awk '{ s += $1 } END { print s + 0 }'; }
cpu_us() { rcli dc INFO cpu | tr -d '\r' | awk -F: '/^used_cpu_(user|sys):/ { s += $2 } END { printf "%d\n", s * 1e6 }'; }
rate() { sed -n 's/^ *decisions\/s *\([0-9]*\).*/\1/p' <<<"$1"; }
hot_n=$((n * 9 / 10))
cold_n=$((n - hot_n))
fail=0
fmt='%-10s %10s %10s %10s %9s %10s %14s %14s %14s\n'
printf "$fmt" "deny_cache" "decisions" "evalsha" "evalsha/d" "cmds" "cmds/d" "redis_cpu_us/d" "denied_part/s" "open_part/s"
for mode in on off; do
  rcli dc FLUSHALL >/dev/null
  rcli dc CONFIG RESETSTAT >/dev/null
  c0=$(cpu_us)
  hot=$("$S" bench --config "$RL_DIR/dc.yaml" --rule denied --store "$URL?deny_cache=$mode" \
    --keys 10 --requests "$hot_n" --concurrency 64 2>/dev/null) || fail=1
  cold=$("$S" bench --config "$RL_DIR/dc.yaml" --rule open --store "$URL?deny_cache=$mode" \
    --keys 100000 --requests "$cold_n" --concurrency 64 2>/dev/null) || fail=1
  c1=$(cpu_us)
  cmds=$(calls)
  ev=$(calls evalsha)
  per=$(awk -v c="$cmds" -v d="$n" 'BEGIN { printf "%.4f", c / d }')
  eper=$(awk -v c="$ev" -v d="$n" 'BEGIN { printf "%.4f", c / d }')
  eval "per_$mode=$per eper_$mode=$eper"
  printf "$fmt" "$mode" "$n" "$ev" "$eper" "$cmds" "$per" "$(awk -v c=$((c1 - c0)) -v d="$n" 'BEGIN { printf "%.3f", c / d }')" \
    "$(rate "$hot")" "$(rate "$cold")"
done
awk -v a="$per_off" -v b="$per_on" -v x="$eper_off" -v y="$eper_on" 'BEGIN { if (b > 0 && y > 0)
  printf "Redis commands per decision, off / on: %.1fx (all commands, those the script calls included); EVALSHA per decision: %.1fx (target >= 5x)\n", a / b, x / y }'
echo "command: sluice bench --config <dc.yaml> --rule denied --keys 10 --requests $hot_n --concurrency 64, then --rule open --keys 100000 --requests $cold_n, --store 'redis://...?deny_cache=on|off'"
echo "loadavg: $(cat /proc/loadavg)"
exit $fail
