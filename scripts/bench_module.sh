#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make bench, native module section (called by scripts/bench.sh; also runs
# alone): one redis-server with build/lib/sluice_redis.so loaded, pinned to
# CPU 0 (clients on the other CPUs where there are any), and in the same run:
#   1. Redis's own CPU per decision (INFO cpu used_cpu_sys + used_cpu_user,
#      after minus before, divided by the commands run), pipelined
#      (redis-benchmark -P 64 -c 4, 100000 random keys, warm buckets): raw
#      INCR; token bucket via SLUICE.DECIDE and via sluice.lua (EVALSHA);
#      a 3-limit rule and a sliding log on both engines;
#   2. `sluice bench --store redis://...?engine=module --concurrency 64`
#      against engine=lua, on a token bucket of 100/s (keys churn) and of
#      100/h (keys stay), then bench/bench_redis.c's open loop at half of
#      the module's peak (its p99) at hz 10 and hz 100, and without expiry;
#   3. sluiced /v1/authorize on engine=module (wrk -c64) against the `sluice
#      bench` ceiling of the same store, with each side's CPU per request.
#   4. with SLUICE_BENCH_CALLGRIND=1: instructions per command on the server
#      (valgrind --tool=callgrind on redis-server), which other load on the
#      machine does not skew.
# Targets of issue 9 are printed next to the figures, met or not.  Knobs:
# BUILD (default build), SLUICE_BENCH_MODULE_N (commands per redis-benchmark
# run, default 1000000).  Nothing fails on a number; a run that breaks exits 1.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${BUILD:-build}
n=${SLUICE_BENCH_MODULE_N:-1000000}
S="$root/$build/bin/sluice"
D="$root/$build/bin/sluiced"
M="$root/$build/lib/sluice_redis.so"
for t in redis-server redis-benchmark redis-cli; do
  command -v $t >/dev/null || { echo "skipped: $t not installed"; exit 0; }
done
for f in "$S" "$M"; do [ -e "$f" ] || { echo "bench_module: $f missing (build first)"; exit 1; }; done

. "$root/tests/integ/redis_lib.sh"
. "$root/scripts/bench_lib.sh"
redis_lib_init
ncpu=$(nproc)
srv_cpu=0
cli_cpus=$([ "$ncpu" -gt 1 ] && echo "1-$((ncpu - 1))" || echo 0)
pin_cli() { taskset -c "$cli_cpus" "$@"; }
RL_PORT_mb=$(free_port)
mkdir -p "$RL_DIR/mb"
# taskset itself in the background (not a function: that would fork a
# subshell, and $! would name the subshell, leaving the server behind)
taskset -c "$srv_cpu" redis-server --port "$RL_PORT_mb" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$RL_DIR/mb" --logfile "$RL_DIR/mb/log" --loadmodule "$M" &
RL_PID_mb=$!
RL_PIDS+=("$RL_PID_mb")
wait_ping "$RL_PORT_mb" || exit 1
P=$RL_PORT_mb
URL="redis://127.0.0.1:$P"
fail=0
sha=$(rcli mb SCRIPT LOAD "$(cat src/store/redis/sluice.lua)")

echo "machine: $ncpu CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') pinned to CPU $srv_cpu, clients on CPU $cli_cpus"
echo "redis-benchmark -P 64 -c 4 -r 100000 -n $n, medians of 3 runs; Redis CPU = delta of INFO cpu used_cpu_sys+used_cpu_user / n"

redis_cpu() { rcli mb INFO cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.6f", s }'; }
fmt='%-44s %12s %14s %10s\n'
printf "$fmt" "what (pipelined, warm)" "commands/s" "redis_cpu_us" "vs_incr"
# run1 ARGS...: one redis-benchmark run after a FLUSHALL and a warm-up; sets
# $cpu_us (Redis CPU-us per command) and $rps, or returns 1.
run1() {
  local c0 c1 line
  rcli mb FLUSHALL >/dev/null
  # warm-up: every bucket exists, so each call is read-modify-write in place
  pin_cli redis-benchmark -p "$P" -P 64 -c 4 -r 100000 -n 200000 -q "$@" >/dev/null 2>&1
  c0=$(redis_cpu)
  line=$(pin_cli redis-benchmark -p "$P" -P 64 -c 4 -r 100000 -n "$n" -q "$@" 2>&1 | tr '\r' '\n' | grep 'requests per second' | tail -1)
  c1=$(redis_cpu)
  rps=$(sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' <<<"$line")
  cpu_us=$(awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN { printf "%.3f", (b - a) * 1e6 / n }')
  [ -n "$rps" ]
}
med() { printf '%s\n' "$@" | sort -g | sed -n "$((($# + 1) / 2))p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
row() { printf "$fmt" "$1" "$2" "$3" "$4"; }

# The machine's speed drifts by tens of percent from one minute to the
# next, so the three token-bucket rows run as one round (INCR, module, Lua
# back to back), three rounds, and each ratio is the median of the rounds'
# own ratios: a slow minute then slows both sides of a ratio alike.
W=3600000
TB_MOD=(SLUICE.DECIDE 'sluice:{tb:__rand_int__}:0' "-1 1 0 3 100 $W 100")
TB_LUA=(EVALSHA "$sha" 1 'sluice:{tb:__rand_int__}:0' -1 1 3 100 $W 100 0)
declare -a CI CM CL RI RM RL QI QL
for r in 1 2 3; do
  run1 INCR 'k:__rand_int__' || fail=1
  CI+=("$cpu_us"); RI+=("$rps")
  run1 "${TB_MOD[@]}" || fail=1
  CM+=("$cpu_us"); RM+=("$rps")
  run1 "${TB_LUA[@]}" || fail=1
  CL+=("$cpu_us"); RL+=("$rps")
  QI+=("$(ratio "${CM[-1]}" "${CI[-1]}")")
  QL+=("$(ratio "${CL[-1]}" "${CM[-1]}")")
done
incr_us=$(med "${CI[@]}")
mod_us=$(med "${CM[@]}")
lua_us=$(med "${CL[@]}")
row "raw INCR" "$(med "${RI[@]}")" "$incr_us" -
row "token_bucket, module (SLUICE.DECIDE)" "$(med "${RM[@]}")" "$mod_us" "$(ratio "$mod_us" "$incr_us")x"
row "token_bucket, Lua (EVALSHA sluice.lua)" "$(med "${RL[@]}")" "$lua_us" "$(ratio "$lua_us" "$incr_us")x"
echo "    rounds: INCR ${CI[*]} us; module ${CM[*]} us; Lua ${CL[*]} us"
echo "    per round: module/INCR ${QI[*]}; Lua/module ${QL[*]}"
# med3 LABEL ARGS...: median of three runs of one more row
med3() {
  local label=$1 c=() q=() k; shift
  for k in 1 2 3; do run1 "$@" || fail=1; c+=("$cpu_us"); q+=("$rps"); done
  row "$label" "$(med "${q[@]}")" "$(med "${c[@]}")" "$(ratio "$(med "${c[@]}")" "$incr_us")x"
}
med3 "3 limits (tb+fw+sw), module" SLUICE.DECIDE 'sluice:{m:__rand_int__}:0' 'sluice:{m:__rand_int__}:1' \
  'sluice:{m:__rand_int__}:2' "-1 1 0 3 100 $W 100 0 1000 $W 0 2 1000 $W 0"
med3 "3 limits (tb+fw+sw), Lua" EVALSHA "$sha" 3 'sluice:{m:__rand_int__}:0' 'sluice:{m:__rand_int__}:1' \
  'sluice:{m:__rand_int__}:2' -1 1 3 100 $W 100 0 1000 $W 0 2 1000 $W 0 0
med3 "sliding_log (limit 100), module" SLUICE.DECIDE 'sluice:{sl:__rand_int__}:0' "-1 1 0 1 100 $W 0"
med3 "sliding_log (limit 100), Lua" EVALSHA "$sha" 1 'sluice:{sl:__rand_int__}:0' -1 1 1 100 $W 0 0
echo
qi=$(med "${QI[@]}")
ql=$(med "${QL[@]}")
awk -v m="$mod_us" -v ql="$ql" -v qi="$qi" 'BEGIN {
  printf "target: module token bucket <= 1.50 us Redis CPU per decision: %.2f us: %s\n", m, (m <= 1.5 ? "met" : "NOT met")
  printf "target: >= 5x fewer Redis CPU-us than Lua (median of the rounds): %.2fx: %s\n", ql, (ql >= 5 ? "met" : "NOT met")
  printf "target: within 2x of raw pipelined INCR (median of the rounds): %.2fx: %s\n", qi, (qi <= 2 ? "met" : "NOT met")
}'

# ---- 2: sluice bench, both engines, same server -------------------------
echo
# bench/bench.yaml's token bucket with a deadline a loaded 2-CPU machine
# meets: an error (fail-open) must not count as a decision.  Twice: 100/s
# (a key's state is back to untouched 10 ms after a decision, so its TTL
# ends and nearly every decision creates a key that Redis later expires:
# both engines pay that churn alike, which dilutes their ratio), and 100/h
# (keys stay for the run: the engines' own ratio).
cfg="$RL_DIR/bench.yaml"
# (timeout_ms first: bench.yaml ends with its rules, which the 1 h rule joins)
{ echo 'timeout_ms: 1000'; grep -v '^timeout_ms:' "$root/bench/bench.yaml"
  echo '  - name: token_bucket_1h'
  echo '    limits: [ { algorithm: token_bucket, limit: 100, window: 1h, burst: 100 } ]'; } >"$cfg"
echo "sluice bench --config bench/bench.yaml (timeout_ms 1000) --rule R --store '$URL?engine=E' --concurrency 64 --requests 400000 --keys 100000"
printf '%-16s %-16s %12s %9s %9s %s\n' rule engine decisions/s p50_us p99_us errors
declare -A dps
for rule in token_bucket token_bucket_1h; do
  for e in lua module; do
    rcli mb FLUSHALL >/dev/null
    line=$(pin_cli "$S" bench --config "$cfg" --rule "$rule" --store "$URL?engine=$e" \
      --concurrency 64 --requests 400000 --keys 100000 2>/dev/null | tail -1)
    dps[$rule.$e]=$(sed -n "s/.*decisions_per_sec=\([0-9]*\).*/\1/p" <<<"$line")
    printf '%-16s %-16s %12s %9s %9s %s\n' "$rule" "$e" "${dps[$rule.$e]:-FAILED}" \
      "$(sed -n 's/.*p50_us=\([0-9.]*\).*/\1/p' <<<"$line")" "$(sed -n 's/.*p99_us=\([0-9.]*\).*/\1/p' <<<"$line")" \
      "$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$line")"
    [ -n "${dps[$rule.$e]}" ] || fail=1
  done
  [ -n "${dps[$rule.lua]:-}" ] && [ -n "${dps[$rule.module]:-}" ] &&
    awk -v m="${dps[$rule.module]}" -v l="${dps[$rule.lua]}" -v r="$rule" 'BEGIN {
    printf "target: sluice bench engine=module >= 3x engine=lua (%s): %.2fx: %s (the client shares the 2 CPUs with Redis)\n",
      (r == "token_bucket" ? "100/s, keys churn" : "100/h, keys stay"), m / l, (m / l >= 3 ? "met" : "NOT met") }'
done
# p99 at half of the 100/s peak: bench_redis's open loop (a decision due
# every 1/RATE s whatever the answers; latency from the due time, so a
# stalled client counts against it) on the same token bucket, engine=module.
# Three runs: the token bucket at Redis's default hz 10 (its active expiry
# then runs up to 25 ms of every 100 ms tick while ~one key per decision
# expires), the same at hz 100 (a cycle is capped at 2.5 ms: the setting
# docs/redis.md recommends for such churn), and BENCH_LONG_TTL=1 (a 1 h
# window, no expiry) at hz 10, which tells the engine's own tail.
if [ -n "${dps[token_bucket.module]:-}" ] && cmake --build "$build" --target bench_redis >/dev/null 2>&1; then
  half=$((${dps[token_bucket.module]} / 2))
  for run in "0 10" "0 100" "1 10"; do
    read -r ttl hz <<<"$run"
    rcli mb FLUSHALL >/dev/null
    rcli mb CONFIG SET hz "$hz" >/dev/null
    line=$(BENCH_LONG_TTL=$ttl pin_cli "$root/$build/bin/bench_redis" "$URL?engine=module" "$half" 5000 | tail -1)
    p99=$(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' <<<"$line")
    echo "bench_redis open loop at half the module's peak ($half decisions/s, 5 s, engine=module, BENCH_LONG_TTL=$ttl, hz $hz): $line"
    [ -n "$p99" ] && awk -v p="$p99" -v t="$ttl" -v hz="$hz" 'BEGIN {
      printf "target: p99 under 1 ms at half of the peak (%s, hz %d): %d us: %s\n", (t ? "no expiry" : "token bucket"), hz, p, (p < 1000 ? "met" : "NOT met") }'
    [ -n "$p99" ] || fail=1
  done
  rcli mb CONFIG SET hz 10 >/dev/null
fi

# ---- 3: sluiced /v1/authorize on engine=module --------------------------
echo
if command -v wrk >/dev/null && [ -x "$D" ]; then
  cat >"$RL_DIR/d.yaml" <<'EOF'
identify: [header:X-API-Key, ip]
on_store_error: allow
timeout_ms: 1000
rules:
  - name: bench
    limits: [ { algorithm: token_bucket, limit: 100, window: 1s, burst: 100 } ]
EOF
  cat >"$RL_DIR/a.lua" <<'EOF'
local reqs, n = {}, 10000
init = function(args)
  for i = 1, n do
    reqs[i] = wrk.format("GET", "/v1/authorize", {["X-Original-URI"] = "/api/items",
      ["X-Original-Method"] = "GET", ["X-API-Key"] = "key" .. i})
  end
end
request = function() return reqs[math.random(n)] end
EOF
  hp=$(free_port)
  rcli mb FLUSHALL >/dev/null
  taskset -c "$cli_cpus" "$D" --config "$RL_DIR/d.yaml" --store "$URL?engine=module" --listen "127.0.0.1:$hp" \
    --workers 1 >"$RL_DIR/d.log" 2>&1 &
  dp=$!
  wait_port "$hp"
  # CPU seconds each side spent, so the shared CPU can be read out of the
  # ratio: sluiced's from /proc (taskset execs it, so $dp is sluiced), wrk's
  # and the bench client's as they exit
  d0=$(cpu_secs "$dp")
  wcpu=$(cpu_run "$RL_DIR/wrk.out" pin_cli wrk -t1 -c64 -d5s --latency -s "$RL_DIR/a.lua" "http://127.0.0.1:$hp/")
  d1=$(cpu_secs "$dp")
  kill "$dp"; wait "$dp" 2>/dev/null
  rps=$(awk '/^Requests\/sec:/ {printf "%d", $2}' "$RL_DIR/wrk.out")
  p99=$(awk '$1 == "99%" {print $2}' "$RL_DIR/wrk.out")
  rcli mb FLUSHALL >/dev/null
  bn=400000
  bcpu=$(cpu_run "$RL_DIR/ceil.out" pin_cli "$S" bench --config "$RL_DIR/d.yaml" --rule bench --store "$URL?engine=module" \
    --concurrency 64 --requests "$bn" --keys 10000)
  ceil=$(tail -1 "$RL_DIR/ceil.out" | sed -n 's/.*decisions_per_sec=\([0-9]*\).*/\1/p')
  echo "sluiced --workers 1 /v1/authorize on $URL?engine=module, wrk -t1 -c64 -d5s, 10000 keys: ${rps:-FAILED} req/s, p99 $p99"
  echo "sluice bench ceiling of the same store and rule (--concurrency 64): ${ceil:-FAILED} decisions/s"
  [ -n "$rps" ] && [ -n "$ceil" ] || fail=1
  [ -n "$rps" ] && [ -n "$ceil" ] && awk -v r="$rps" -v c="$ceil" 'BEGIN {
    printf "target: sluiced >= 80%% of the sluice bench ceiling: %.0f%%: %s (wrk, sluiced and Redis share %d CPUs)\n", 100 * r / c, (r >= 0.8 * c ? "met" : "NOT met"), '"$ncpu"' }'
  nreq=$(awk '/requests in/ {print $1}' "$RL_DIR/wrk.out")
  echo "CPU per request: sluiced $(us_per "$d0" "$d1" "$nreq") us, wrk $(us_per 0 "$wcpu" "$nreq") us;" \
    "the sluice bench client $(us_per 0 "$bcpu" "$bn") us per decision"
else
  echo "skipped sluiced: wrk or sluiced missing"
fi

# ---- 4: callgrind instructions per command ------------------------------
if [ "${SLUICE_BENCH_CALLGRIND:-0}" = 1 ] && command -v valgrind >/dev/null; then
  echo
  echo "callgrind: instructions per command on redis-server (20000 pipelined commands, 1000 warm keys)"
  cg() { # label args...
    local label=$1 port out; shift
    port=$(free_port)
    mkdir -p "$RL_DIR/cg"
    valgrind --tool=callgrind --callgrind-out-file="$RL_DIR/cg/out.$port" --instr-atstart=no \
      redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$RL_DIR/cg" \
      --loadmodule "$M" >/dev/null 2>&1 &
    local vp=$!
    wait_ping "$port" 60 >/dev/null || { echo "  $label: valgrind redis-server did not start"; kill "$vp"; return; }
    local s
    s=$(redis-cli -p "$port" SCRIPT LOAD "$(cat src/store/redis/sluice.lua)")
    local -a a=("$@")
    a=("${a[@]//@SHA@/$s}")
    redis-benchmark -p "$port" -P 64 -c 1 -r 1000 -n 5000 -q "${a[@]}" >/dev/null 2>&1
    callgrind_control -i on "$vp" >/dev/null 2>&1
    redis-benchmark -p "$port" -P 64 -c 1 -r 1000 -n 20000 -q "${a[@]}" >/dev/null 2>&1
    callgrind_control -i off "$vp" >/dev/null 2>&1
    redis-cli -p "$port" SHUTDOWN NOSAVE >/dev/null 2>&1
    wait "$vp" 2>/dev/null
    local ir
    ir=$(callgrind_annotate "$RL_DIR/cg/out.$port" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
    printf '  %-44s %10s instructions per command\n' "$label" "$(awk -v i="${ir:-0}" 'BEGIN { printf "%d", i / 20000 }')"
  }
  cg "raw INCR" INCR 'k:__rand_int__'
  cg "token_bucket, module" SLUICE.DECIDE 'sluice:{tb:__rand_int__}:0' "-1 1 0 3 100 $W 100"
  cg "token_bucket, Lua" EVALSHA @SHA@ 1 'sluice:{tb:__rand_int__}:0' -1 1 3 100 $W 100 0
fi

exit $fail
