#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make bench, Redis section (called by scripts/bench.sh): starts its own
# redis-server on a free loopback port and prints, from the same run on the
# same server:
#   - the raw ceiling: redis-benchmark INCR, 1 and 64 connections;
#   - a minimal Lua token bucket (GCRA, TIME + HMGET + HSET + PEXPIRE) run by
#     redis-benchmark with EVALSHA, 1 and 64 connections: what any Lua-based
#     limiter costs on this server;
#   - sluice's own script run by redis-benchmark (server cost of sluice);
#   - `sluice bench --store redis://...` with 1 and 64 decisions in flight;
#   - bench_redis (bench/bench_redis.c, the async path through the public
#     API): the peak with 64 in flight, then an open-loop load at half of
#     that peak, whose p99 is the "p99 at half of peak load" figure.
# Ratios: sluice / minimal Lua at the same number in flight.  Rows marked
# 1x64 pipeline 64 commands on one connection, as sluice's async path does.  Knobs: BUILD
# (default build), SLUICE_BENCH_REDIS_N (decisions per run, default 200000).
# Nothing passes or fails on a number; a run that breaks exits 1.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${BUILD:-build}
n=${SLUICE_BENCH_REDIS_N:-200000}
S="$root/$build/bin/sluice"
for t in redis-server redis-benchmark redis-cli; do
  command -v $t >/dev/null || { echo "skipped: $t not installed"; exit 0; }
done
[ -x "$S" ] || { echo "bench_redis: $S missing (build first)"; exit 1; }
cmake --build "$build" --target bench_redis >/dev/null 2>&1 || { echo "bench_redis did not build"; exit 1; }
BR="$root/$build/bin/bench_redis"

. "$root/tests/integ/redis_lib.sh"
redis_lib_init
redis_start bench
P=$RL_PORT_bench
URL="redis://127.0.0.1:$P"
fail=0

lua_tb='local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call("HGET", KEYS[1], "tat")) or now
if tat < now then tat = now end
if tat - now + interval > burst * interval then return 0 end
tat = tat + interval
redis.call("HSET", KEYS[1], "tat", tat)
redis.call("PEXPIRE", KEYS[1], tat - now)
return 1'
tb_sha=$(rcli bench SCRIPT LOAD "$lua_tb")
sl_sha=$(rcli bench SCRIPT LOAD "$(cat src/store/redis/sluice.lua)
")

fmt='%-52s %9s %12s %9s %9s %8s\n'
printf "$fmt" "what" "in flight" "decisions/s" "p50_us" "p99_us" "ratio"
# rb LABEL CONNS ARGS...: redis-benchmark row; sets $rate
rb() {
  local label=$1 c=$2; shift 2
  local reqs=$n; [ "$c" = 1 ] && reqs=$((n / 4))
  local line
  local pipe=1
  case $c in *x*) pipe=${c#*x}; c=${c%x*}; reqs=$n ;; esac # "1x64": 1 connection, 64 pipelined
  line=$(redis-benchmark -p "$P" -n "$reqs" -c "$c" -P "$pipe" -r 100000 --csv "$@" 2>/dev/null | tail -1)
  # "name","rps","avg","min","p50","p95","p99","max" in ms
  IFS=, read -r _ r _ _ p50 _ p99 _ <<<"$(tr -d '"' <<<"$line" | sed 's/^[^,]*,//; s/^/x,/')"
  rate=${r%.*}
  if [ -z "$rate" ]; then printf "$fmt" "$label" "$c" FAILED - - -; fail=1; rate=0; return; fi
  [ "$pipe" != 1 ] && c="${c}x$pipe"
  printf "$fmt" "$label" "$c" "$rate" "$(awk -v v="$p50" 'BEGIN{printf "%.0f", v*1000}')" \
    "$(awk -v v="$p99" 'BEGIN{printf "%.0f", v*1000}')" ""
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

rb "redis-benchmark INCR (raw ceiling)" 1 -t incr; incr1=$rate
rb "redis-benchmark INCR (raw ceiling)" 64 -t incr; incr64=$rate
rb "redis-benchmark minimal Lua token bucket" 1 EVALSHA "$tb_sha" 1 'tb:{__rand_int__}' 10 100; lua1=$rate
rb "redis-benchmark minimal Lua token bucket" 64 EVALSHA "$tb_sha" 1 'tb:{__rand_int__}' 10 100; lua64=$rate
rb "redis-benchmark minimal Lua token bucket" 1x64 EVALSHA "$tb_sha" 1 'tb:{__rand_int__}' 10 100; luap=$rate
rb "redis-benchmark sluice.lua token_bucket" 64 EVALSHA "$sl_sha" 1 'sluice:{x:__rand_int__}:0' -1 1 3 100 1000 100 0; sl64=$rate
rb "redis-benchmark sluice.lua token_bucket" 1x64 EVALSHA "$sl_sha" 1 'sluice:{x:__rand_int__}:0' -1 1 3 100 1000 100 0; slp=$rate

# bench/bench.yaml's token_bucket rule with a 1 s deadline: this measures
# throughput; a loaded machine must not turn it into a test of on_store_error
sed 's/^timeout_ms: .*/timeout_ms: 1000/' bench/bench.yaml >"$RL_DIR/bench.yaml"
re='^decisions_per_sec=([0-9]+) p50_us=([0-9.]+) p99_us=([0-9.]+) p999_us=([0-9.]+) allowed=([0-9]+) denied=([0-9]+) errors=([0-9]+)$'
for c in 1 64; do
  reqs=$n; [ "$c" = 1 ] && reqs=$((n / 4))
  last=$("$S" bench --config "$RL_DIR/bench.yaml" --rule token_bucket --store "$URL" --keys 100000 \
    --requests "$reqs" --concurrency "$c" 2>/dev/null | tail -1)
  if [[ "$last" =~ $re ]]; then
    base=$lua1; [ "$c" = 64 ] && base=$lua64
    printf "$fmt" "sluice bench --store redis:// token_bucket" "$c" "${BASH_REMATCH[1]}" \
      "${BASH_REMATCH[2]%.*}" "${BASH_REMATCH[3]%.*}" "$(ratio "${BASH_REMATCH[1]}" "$base")"
    [ "${BASH_REMATCH[7]}" = 0 ] || { echo "    errors: ${BASH_REMATCH[7]}"; fail=1; }
  else
    printf "$fmt" "sluice bench --store redis:// token_bucket" "$c" FAILED - - -; echo "    $last"; fail=1
  fi
done

out=$("$BR" "$URL" 0 3000 64)
peak=$(sed -n 's/.*decisions_per_sec=\([0-9]*\).*/\1/p' <<<"$out")
printf "$fmt" "bench_redis async peak (public API)" 64 "$peak" \
  "$(sed -n 's/.*p50_us=\([0-9]*\).*/\1/p' <<<"$out")" "$(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' <<<"$out")" \
  "$(ratio "$peak" "$lua64")"
half=$((peak / 2))
out=$("$BR" "$URL" "$half" 3000)
printf "$fmt" "bench_redis open loop at half of peak ($half/s)" "-" \
  "$(sed -n 's/.*decisions_per_sec=\([0-9]*\).*/\1/p' <<<"$out")" \
  "$(sed -n 's/.*p50_us=\([0-9]*\).*/\1/p' <<<"$out")" "$(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' <<<"$out")" ""
grep -q 'errors=0' <<<"$out" || fail=1
echo "ratio: sluice decisions/s over the minimal Lua token bucket's at the same number in flight"
echo "(redis-benchmark with 64 connections; '1x64' rows: one connection, 64 pipelined, as sluice does:"
echo " minimal Lua $luap/s, sluice.lua $slp/s, sluice async peak / pipelined minimal Lua = $(ratio "$peak" "$luap"),"
echo " / pipelined sluice.lua = $(ratio "$peak" "$slp"): the rest is the script's own work)"
echo "(targets: >= 0.90 with 64 in flight; p99 < 1000 us at half of peak).  redis-server and the"
echo "client share this machine's $(nproc) CPUs; INCR ceiling 1/64: $incr1/$incr64 per s;"
echo "sluice.lua alone (server cost, redis-benchmark, 64 connections): $sl64 per s."
exit $fail
