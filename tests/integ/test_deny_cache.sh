#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The exact local deny cache (?deny_cache=on|off) against real redis-server
# processes on free loopback ports (stopped on exit):
#   1. store_test_deny_cache live: hot denied keys of every algorithm and a
#      multi-limit rule on the server's clock; every cached answer equals
#      Redis's own answer at its now_ms;
#   2. the decision vectors print their .out rows with the cache on and off;
#   3. random replay traces (many requests per millisecond, every algorithm,
#      a multi-limit rule, costs 0..9): identical rows on memory://, and on
#      redis:// with the cache on and off; with it on Redis ran fewer scripts;
#   4. freed by time: a denied key is allowed again at exactly the
#      millisecond Redis allows it (requests every ms across the boundary);
#   5. the cache answers locally: a hot denied key on the server's clock
#      (blocking and async paths) runs at least 5x fewer EVALSHA (INFO
#      commandstats), and admits exactly the same;
#   6. exact totals under concurrency with the cache on: 6 processes on one
#      key admit exactly the limit, for every algorithm and a multi-limit rule;
#   7. the same through redis+cluster:// (3 masters): vectors and traces on
#      and off, and fewer EVALSHA summed over the masters for a hot key;
#   8. a bad value of deny_cache is refused with a clear error.
set -uo pipefail
: "${SLUICE_BIN:?}" "${SLUICE_SRC:?}"
. "$SLUICE_SRC/tests/integ/redis_lib.sh"
redis_lib_init
S="$SLUICE_BIN/sluice"
U="$SLUICE_BIN/store_test_deny_cache"
T="$SLUICE_BIN/store_test_redis"
for b in "$S" "$U" "$T"; do [ -x "$b" ] || { echo "FAIL: $b missing"; exit 1; }; done

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
check() { # description, then a command that must succeed
  local d=$1; shift
  if "$@"; then ok "$d"; else bad "$d"; fi
}
field() { sed -n "s/.*\b$1=\([0-9-]*\).*/\1/p" <<<"$2"; }
# EVALSHA calls so far on the servers on ports $@ (summed)
evalsha() {
  local p n sum=0
  for p in "$@"; do
    n=$(redis-cli -p "$p" INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\).*/\1/p')
    sum=$((sum + ${n:-0}))
  done
  echo "$sum"
}
resetstat() { local p; for p in "$@"; do redis-cli -p "$p" CONFIG RESETSTAT >/dev/null; done; }

redis_start a
A=$RL_PORT_a
URL="redis://127.0.0.1:$A"

# ---- 1 ------------------------------------------------------------------
if SLUICE_REDIS_URL="$URL/1" "$U" >"$RL_DIR/unit.log" 2>&1; then
  ok "store_test_deny_cache live on the server's clock ($(tail -1 "$RL_DIR/unit.log"))"
  grep 'answered by the cache' "$RL_DIR/unit.log" | sed 's/^/  #/'
else
  bad "store_test_deny_cache live"; tail -20 "$RL_DIR/unit.log"
fi

# ---- 2 ------------------------------------------------------------------
vectors "redis://" "$URL/2" rcli a -n 2 FLUSHDB

# ---- 3 ------------------------------------------------------------------
cp "$SLUICE_SRC/tests/configs/good_replay_all.yaml" "$RL_DIR/replay.yaml"
gen_trace() { # seed base_ms: bursts of identical requests, so that denials repeat
  /usr/bin/python3 - "$1" "$2" <<'P'
import random, sys
r = random.Random(int(sys.argv[1])); t = int(sys.argv[2])
rules = ["fw", "sl", "sw", "tb", "lb", "multi", "multi2"]
for _ in range(800):
    t += r.choice([0, 1, 2, 5, 17, 120, 400, 1500])
    rule, key, cost = r.choice(rules), "k%d" % r.randrange(3), r.choice([1, 1, 1, 1, 2, 3, 0, 9])
    for _ in range(r.choice([1, 1, 3, 8])):
        print(t, rule, key, cost)
        t += r.choice([0, 0, 1, 3])
        if r.random() < 0.25:  # the same key at another cost: this client's own admissions
            print(t, rule, key, r.choice([0, 1, 1, 2]))
P
}
traces() { # label url ports flush_cmd...
  local label=$1 url=$2 ports=$3 base on off; shift 3
  for base in 0 1700000000000; do
    gen_trace "$seed" "$base" >"$RL_DIR/trace.in"
    "$S" replay --config "$RL_DIR/replay.yaml" --store memory:// <"$RL_DIR/trace.in" >"$RL_DIR/mem.out" 2>&1
    "$@" >/dev/null; resetstat $ports
    "$S" replay --config "$RL_DIR/replay.yaml" --store "$url?deny_cache=on" <"$RL_DIR/trace.in" >"$RL_DIR/on.out" 2>&1
    on=$(evalsha $ports)
    "$@" >/dev/null; resetstat $ports
    "$S" replay --config "$RL_DIR/replay.yaml" --store "$url?deny_cache=off" <"$RL_DIR/trace.in" >"$RL_DIR/off.out" 2>&1
    off=$(evalsha $ports)
    if [ -s "$RL_DIR/mem.out" ] && cmp -s "$RL_DIR/mem.out" "$RL_DIR/on.out" &&
      cmp -s "$RL_DIR/mem.out" "$RL_DIR/off.out"; then
      ok "$label: $(wc -l <"$RL_DIR/trace.in") replay rows from t=$base identical on memory://, cache on, cache off"
    else
      bad "$label: replay from t=$base differs (seed $seed)"
      diff "$RL_DIR/mem.out" "$RL_DIR/on.out" | head -6 | sed 's/^/    on:  /'
      diff "$RL_DIR/mem.out" "$RL_DIR/off.out" | head -6 | sed 's/^/    off: /'
    fi
    check "$label: the cache answered part of it (EVALSHA $on with it, $off without)" \
      test "$on" -lt "$off"
  done
}
seed=${SLUICE_SEED:-$RANDOM}
echo "# trace seed $seed"
traces "redis://" "$URL/3" "$A" rcli a -n 3 FLUSHDB

# ---- 4 ------------------------------------------------------------------
cat >"$RL_DIR/freed.yaml" <<'Y'
timeout_ms: 5000
on_store_error: deny
rules:
  - name: fw
    match: { path: /fw }
    limits: [ { algorithm: fixed_window, limit: 3, window: 1s } ]
  - name: tb
    match: { path: /tb }
    limits: [ { algorithm: token_bucket, limit: 4, window: 1s, burst: 2 } ]
Y
{
  for i in 1 2 3; do echo "1000 fw a"; done
  for ((t = 1500; t <= 2003; t++)); do echo "$t fw a"; done # denied until 1999, allowed at 2000
  for i in 1 2; do echo "5000 tb a"; done
  for ((t = 5000; t <= 5260; t++)); do echo "$t tb a"; done # one token per 250 ms: allowed at 5250
} >"$RL_DIR/freed.in"
# this client's own admission at another cost changes what a cached denial says
printf '9000 fw b 2\n9001 fw b 2\n9002 fw b 1\n9003 fw b 2\n9004 fw b 1\n9005 fw b 2\n' >"$RL_DIR/own.in"
for mode in on off; do
  rcli a -n 4 FLUSHDB >/dev/null
  resetstat "$A"
  "$S" replay --config "$RL_DIR/freed.yaml" --store "$URL/4?deny_cache=$mode" <"$RL_DIR/freed.in" >"$RL_DIR/freed.$mode" 2>&1
  eval "freed_calls_$mode=$(evalsha "$A")"
done
for mode in on off; do
  rcli a -n 4 FLUSHDB >/dev/null
  "$S" replay --config "$RL_DIR/freed.yaml" --store "$URL/4?deny_cache=$mode" <"$RL_DIR/own.in" >"$RL_DIR/own.$mode" 2>&1
done
check "own traffic: an admission at another cost drops the key's cached denials (rows equal)" \
  cmp -s "$RL_DIR/own.on" "$RL_DIR/own.off"
# rows of the .in: 3 + 504 fixed-window rows, then 2 + 261 token-bucket rows
first_allowed() { awk -v lo="$1" -v hi="$2" 'NR >= lo && NR <= hi && $1 == 1 { print NR; exit }' "$3"; }
check "freed by time: fixed_window allowed again at t=2000, not later (row $((3 + 500 + 1)))" \
  test "$(first_allowed 4 507 "$RL_DIR/freed.on")" = $((3 + 500 + 1))
check "freed by time: token_bucket allowed again at t=5250, not later" \
  test "$(first_allowed 510 770 "$RL_DIR/freed.on")" = $((507 + 2 + 250 + 1))
check "freed by time: cache on and off print the same rows" cmp -s "$RL_DIR/freed.on" "$RL_DIR/freed.off"
check "freed by time: the denials were answered locally (EVALSHA $freed_calls_on on, $freed_calls_off off)" \
  test "$((freed_calls_on * 20))" -lt "$freed_calls_off"

# ---- 5 ------------------------------------------------------------------
W=31622400000
hot() { # inflight
  local mode out calls
  for mode in on off; do
    resetstat "$A"
    out=$("$T" hammer "$URL/5?deny_cache=$mode" "0:10:$W:0" 3000 "$1" "hot:$1:$mode:$RANDOM")
    calls=$(evalsha "$A")
    eval "hot_${mode}_calls=$calls hot_${mode}_allowed=$(field allowed "$out") hot_${mode}_errors=$(field errors "$out")"
  done
  if [ "$hot_on_allowed" = 10 ] && [ "$hot_off_allowed" = 10 ] && [ "$hot_on_errors" = 0 ] &&
    [ "$hot_off_errors" = 0 ] && [ $((hot_on_calls * 5)) -le "$hot_off_calls" ]; then
    ok "hot denied key, $1 in flight: 3000 decisions, 10 admitted, EVALSHA $hot_on_calls with the cache, $hot_off_calls without"
  else
    bad "hot key $1 in flight: on allowed=$hot_on_allowed calls=$hot_on_calls errors=$hot_on_errors; off allowed=$hot_off_allowed calls=$hot_off_calls errors=$hot_off_errors"
  fi
}
hot 0  # the blocking path
hot 32 # the async path

# ---- 6 ------------------------------------------------------------------
exact() { # name spec expected_allowed
  local name=$1 spec=$2 want=$3 key="exact:$1:$RANDOM" i sum=0 errs=0 pids=()
  local u="$URL/6?deny_cache=on"
  for i in 1 2 3 4; do "$T" hammer "$u" "$spec" 1500 32 "$key" >"$RL_DIR/h$i" & pids+=($!); done
  "$T" hammer "$u" "$spec" 300 0 "$key" >"$RL_DIR/h5" & pids+=($!)
  "$T" hammer "$u" "$spec" 300 -12 "$key" >"$RL_DIR/h6" & pids+=($!)
  for i in "${pids[@]}"; do wait "$i"; done
  for i in 1 2 3 4 5 6; do
    sum=$((sum + $(field allowed "$(cat "$RL_DIR/h$i")")))
    errs=$((errs + $(field errors "$(cat "$RL_DIR/h$i")")))
  done
  if [ "$sum" = "$want" ] && [ "$errs" = 0 ]; then
    ok "cache on, $name: 6 processes, 6600 decisions, admitted exactly $want"
  else
    bad "cache on, $name: admitted $sum (want $want), errors $errs"
  fi
}
exact fixed_window "0:1000:$W:0" 1000
exact sliding_log "1:800:$W:0" 800
exact sliding_window "2:1000:$W:0" 1000
exact token_bucket "3:700:$W:700" 700
exact leaky_bucket "4:600:$W:600" 600
exact multi_limit "0:300:$W:0,1:1000:$W:0,3:5000:$W:5000" 300

# ---- 8 ------------------------------------------------------------------
out=$("$S" check --config "$RL_DIR/freed.yaml" --rule fw --key x --store "$URL?deny_cache=maybe" 2>&1)
rc=$?
check "deny_cache=maybe refused (exit $rc): $out" bash -c '[ "$0" -ne 0 ] && grep -q "deny_cache must be on or off" <<<"$1"' "$rc" "$out"

# ---- 7 ------------------------------------------------------------------
. "$SLUICE_SRC/tests/integ/cluster_lib.sh"
trap 'cluster_cleanup; redis_lib_cleanup' EXIT
if cluster_start 3; then
  CURL=$(cluster_url)
  masters=$(cluster_masters | paste -sd' ' -)
  flush_cluster() { local p; for p in $masters; do redis-cli -p "$p" FLUSHALL >/dev/null; done; }
  vectors "redis+cluster://" "$CURL" flush_cluster
  traces "redis+cluster://" "$CURL" "$masters" flush_cluster
  cat >"$RL_DIR/hot.yaml" <<'Y'
timeout_ms: 5000
on_store_error: deny
rules:
  - name: hot
    match: { path: /hot }
    limits: [ { algorithm: token_bucket, limit: 10, window: 1h } ]
Y
  for mode in on off; do
    flush_cluster; resetstat $masters
    out=$("$S" bench --config "$RL_DIR/hot.yaml" --rule hot --store "$CURL?deny_cache=$mode" \
      --hot --requests 3000 --concurrency 16 2>/dev/null)
    eval "c_${mode}_calls=$(evalsha $masters)"
    eval "c_${mode}_allowed=$(awk '$1 == "allowed" { print $2 }' <<<"$out")"
  done
  if [ "$c_on_allowed" = 10 ] && [ "$c_off_allowed" = 10 ] && [ $((c_on_calls * 5)) -le "$c_off_calls" ]; then
    ok "redis+cluster:// hot denied key: 3000 decisions, 10 admitted, EVALSHA $c_on_calls with the cache, $c_off_calls without"
  else
    bad "redis+cluster:// hot key: on allowed=$c_on_allowed calls=$c_on_calls; off allowed=$c_off_allowed calls=$c_off_calls"
  fi
else
  bad "the cluster did not start"
fi

echo "test_deny_cache: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
