#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The redis:// store against real redis-server instances on free loopback
# ports (stopped on exit):
#   1. store_test_redis with SLUICE_REDIS_URL: the script against src/core on
#      random traces (small, epoch-scale, at the bounds), TTLs, SCRIPT FLUSH,
#      the async path with 64 in flight;
#   2. `sluice replay` prints the same rows on memory:// and redis:// for
#      random traces over every algorithm and a multi-limit rule;
#   3. AUTH with user and password, db select; the password never printed;
#   4. exactness under concurrency: 6 processes (4 async with 32 in flight,
#      1 blocking, 1 with 12 threads on the blocking pool) on one key admit exactly the limit, for every algorithm and
#      a multi-limit policy whose denied requests consume nothing;
#   5. keys expire: DBSIZE returns to 0 once the states are untouched;
#   6. SCRIPT FLUSH in a loop during `sluice bench`: no failed decision;
#   7. SIGSTOP: every decision returns within timeout_ms + margin and
#      follows on_store_error; SIGCONT: decisions succeed again;
#   8. kill -9 and restart: failures are immediate, recovery automatic.
set -uo pipefail
: "${SLUICE_BIN:?}" "${SLUICE_SRC:?}"
. "$SLUICE_SRC/tests/integ/redis_lib.sh"
redis_lib_init
S="$SLUICE_BIN/sluice"
T="$SLUICE_BIN/store_test_redis"
for b in "$S" "$T"; do [ -x "$b" ] || { echo "FAIL: $b missing"; exit 1; }; done

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
check() { # description, then a command that must succeed
  local d=$1; shift
  if "$@"; then ok "$d"; else bad "$d"; fi
}
field() { sed -n "s/.*\b$1=\([0-9-]*\).*/\1/p" <<<"$2"; }
# within OUTPUT TIMEOUT_MS: the slowest decision took at most timeout_ms + margin,
# plus however long the hammer process could not run at all (starve_us)
within() {
  local max st
  max=$(field max_us "$1"); st=$(field starve_us "$1")
  [ -n "$max" ] && [ "$max" -le $((($2 + MARGIN_MS) * 1000 + ${st:-0})) ]
}

redis_start a
A=$RL_PORT_a
URL="redis://127.0.0.1:$A"

# ---- 1 ------------------------------------------------------------------
if SLUICE_REDIS_URL="$URL/1" "$T" >"$RL_DIR/unit.log" 2>&1; then
  ok "store_test_redis against redis-server ($(tail -1 "$RL_DIR/unit.log"))"
else
  bad "store_test_redis against redis-server"; tail -20 "$RL_DIR/unit.log"
fi

# ---- 2 ------------------------------------------------------------------
cat >"$RL_DIR/replay.yaml" <<'Y'
timeout_ms: 5000
on_store_error: deny
rules:
  - name: fw
    match: { path: /fw }
    limits: [ { algorithm: fixed_window, limit: 4, window: 1s } ]
  - name: sl
    match: { path: /sl }
    limits: [ { algorithm: sliding_log, limit: 5, window: 700ms } ]
  - name: sw
    match: { path: /sw }
    limits: [ { algorithm: sliding_window, limit: 6, window: 2s } ]
  - name: tb
    match: { path: /tb }
    limits: [ { algorithm: token_bucket, limit: 3, window: 1s, burst: 5 } ]
  - name: lb
    match: { path: /lb }
    limits: [ { algorithm: leaky_bucket, limit: 7, window: 3s, burst: 4 } ]
  - name: multi
    match: { path: /multi }
    limits:
      - { algorithm: token_bucket, limit: 10, window: 1s, burst: 3 }
      - { algorithm: sliding_window, limit: 20, window: 5s }
      - { algorithm: fixed_window, limit: 8, window: 2s }
      - { algorithm: sliding_log, limit: 6, window: 1500ms }
Y
gen_trace() { # seed base_ms
  /usr/bin/python3 - "$1" "$2" <<'P'
import random, sys
r = random.Random(int(sys.argv[1])); t = int(sys.argv[2])
rules = ["fw", "sl", "sw", "tb", "lb", "multi"]
for _ in range(3000):
    t += r.choice([0, 0, 0, 1, 3, 17, 120, 400, 1500])
    cost = r.choice([1, 1, 1, 1, 2, 3, 0, 9])
    print(t, r.choice(rules), "k%d" % r.randrange(4), cost)
P
}
seed=${SLUICE_SEED:-$RANDOM}
echo "# replay seed $seed"
for base in 0 1700000000000 4102444800000; do
  gen_trace "$seed" "$base" >"$RL_DIR/trace.in"
  rcli a -n 2 FLUSHDB >/dev/null
  "$S" replay --config "$RL_DIR/replay.yaml" --store memory:// <"$RL_DIR/trace.in" >"$RL_DIR/mem.out" 2>&1
  "$S" replay --config "$RL_DIR/replay.yaml" --store "$URL/2" <"$RL_DIR/trace.in" >"$RL_DIR/redis.out" 2>&1
  if [ -s "$RL_DIR/mem.out" ] && cmp -s "$RL_DIR/mem.out" "$RL_DIR/redis.out"; then
    ok "replay: memory:// and redis:// agree on 3000 rows from t=$base"
  else
    bad "replay differs from t=$base (seed $seed)"
    diff "$RL_DIR/mem.out" "$RL_DIR/redis.out" | head -10
  fi
done
"$S" replay --json --config "$RL_DIR/replay.yaml" --store memory:// <"$RL_DIR/trace.in" >"$RL_DIR/mem.json" 2>&1
rcli a -n 2 FLUSHDB >/dev/null
"$S" replay --json --config "$RL_DIR/replay.yaml" --store "$URL/2" <"$RL_DIR/trace.in" >"$RL_DIR/redis.json" 2>&1
check "replay --json: memory:// and redis:// agree" cmp -s "$RL_DIR/mem.json" "$RL_DIR/redis.json"

# ---- 3 ------------------------------------------------------------------
redis_start auth --requirepass defaultpw --user alice on ">alicepw" "~*" "&*" "+@all"
P=$RL_PORT_auth
cat >"$RL_DIR/deny.yaml" <<'Y'
timeout_ms: 50
on_store_error: deny
rules:
  - name: r
    match: { path: /r }
    limits: [ { algorithm: fixed_window, limit: 100, window: 1h } ]
Y
sed 's/on_store_error: deny/on_store_error: allow/' "$RL_DIR/deny.yaml" >"$RL_DIR/allow.yaml"
sed 's/timeout_ms: 50/timeout_ms: 1000/' "$RL_DIR/deny.yaml" >"$RL_DIR/ok.yaml" # for checks that must succeed
out=$("$S" check --json --config "$RL_DIR/ok.yaml" --rule r --key u1 --store "redis://alice:alicepw@127.0.0.1:$P/3" 2>&1)
check "AUTH user+password and db 3: allowed, no store error" grep -q '"store_error":false' <<<"$out"
check "the key is in db 3" test "$(redis-cli -p "$P" --user alice --pass alicepw -n 3 --no-auth-warning EXISTS 'sluice:{r:u1}:0')" = 1
out=$("$S" check --json --config "$RL_DIR/ok.yaml" --rule r --key u1 --store "redis://:defaultpw@127.0.0.1:$P" 2>&1)
check "AUTH password only (default user)" grep -q '"store_error":false' <<<"$out"
rcli auth --no-auth-warning -a defaultpw ACL SETUSER bob on '>p@ss:w/rd' '~*' '&*' '+@all' >/dev/null
out=$("$S" check --json --config "$RL_DIR/ok.yaml" --rule r --key u2 --store "redis://bob:p%40ss%3Aw%2Frd@127.0.0.1:$P/0" 2>&1)
check "AUTH with a percent-encoded password" grep -q '"store_error":false' <<<"$out"
out=$("$S" check --config "$RL_DIR/deny.yaml" --rule r --key u1 --store "redis://alice:wrongsecret@127.0.0.1:$P" 2>&1)
rc=$?
check "wrong password: on_store_error deny (exit 1)" test "$rc" = 1
check "wrong password: not printed" bash -c '! grep -q wrongsecret <<<"$0"' "$out"

# ---- 4 ------------------------------------------------------------------
W=31622400000
exact() { # name spec expected_allowed [peek_expected]
  local name=$1 spec=$2 want=$3 key="exact:$1:$RANDOM" i sum=0 errs=0 pids=()
  for i in 1 2 3 4; do "$T" hammer "$URL/4" "$spec" 1500 32 "$key" >"$RL_DIR/h$i" & pids+=($!); done
  "$T" hammer "$URL/4" "$spec" 300 0 "$key" >"$RL_DIR/h5" & pids+=($!)
  "$T" hammer "$URL/4" "$spec" 300 -12 "$key" >"$RL_DIR/h6" & pids+=($!)
  for i in "${pids[@]}"; do wait "$i"; done
  for i in 1 2 3 4 5 6; do
    sum=$((sum + $(field allowed "$(cat "$RL_DIR/h$i")")))
    errs=$((errs + $(field errors "$(cat "$RL_DIR/h$i")")))
  done
  if [ "$sum" = "$want" ] && [ "$errs" = 0 ]; then
    ok "$name: 6 processes, 6600 decisions, admitted exactly $want"
  else
    bad "$name: admitted $sum (want $want), errors $errs"
  fi
  if [ -n "${4:-}" ]; then
    local rem; rem=$("$T" peek "$URL/4" "$spec" "$key")
    check "$name: denied requests consumed nothing (remaining: $rem)" test "$rem" = "$4"
  fi
}
exact fixed_window "0:1000:$W:0" 1000
exact sliding_log "1:800:$W:0" 800
exact sliding_window "2:1000:$W:0" 1000
exact token_bucket "3:700:$W:700" 700
exact leaky_bucket "4:600:$W:600" 600
exact multi_limit "0:300:$W:0,1:1000:$W:0,3:5000:$W:5000" 300 "0 700 4700"

# ---- 5 ------------------------------------------------------------------
for k in 1 2 3 4 5; do
  "$T" hammer "$URL/5" "0:5:300:0,1:5:400:0,2:5:300:0,3:5:500:5,4:5:300:5" 40 8 "ttl:$k" >/dev/null
done
n0=$(rcli a -n 5 DBSIZE)
check "keys exist after traffic (DBSIZE $n0)" test "$n0" -gt 0
for ((i = 0; i < 150; i++)); do
  [ "$(rcli a -n 5 DBSIZE)" = 0 ] && break
  sleep 0.02
done
check "DBSIZE back to 0 once every state is untouched ($((i * 20)) ms after traffic)" test "$(rcli a -n 5 DBSIZE)" = 0

# ---- 6 ------------------------------------------------------------------
cat >"$RL_DIR/bench.yaml" <<'Y'
timeout_ms: 500
rules:
  - name: b
    match: { path: /b }
    limits: [ { algorithm: token_bucket, limit: 1000000, window: 1s } ]
Y
( while :; do redis-cli -p "$A" SCRIPT FLUSH >/dev/null 2>&1; sleep 0.02; done ) &
flusher=$!
out=$("$S" bench --config "$RL_DIR/bench.yaml" --rule b --store "$URL/6" --requests 40000 --concurrency 64 --keys 100 2>/dev/null | tail -1)
out2=$("$T" hammer "$URL/6" "3:1000000:1000:0" 3000 0 flushkey 2>/dev/null)
kill "$flusher"; wait "$flusher" 2>/dev/null
check "SCRIPT FLUSH every 20 ms during sluice bench: no failed decision ($out)" test "$(field errors "$out")" = 0
check "SCRIPT FLUSH during the blocking path: no failed decision ($out2)" test "$(field errors "$out2")" = 0

# ---- 7 ------------------------------------------------------------------
timed_check() { # config store -> prints "rc elapsed_ms"
  local t0 t1 rc
  t0=$(now_ms)
  "$S" check --config "$1" --rule r --key "u$RANDOM" --store "$2" >/dev/null 2>&1
  rc=$?
  t1=$(now_ms)
  echo "$rc $((t1 - t0))"
}
TO=50
MARGIN_MS=${SLUICE_TEST_MARGIN_MS:-50} # plus the hammer's measured starvation (within)
# The hammers of 7 and 8 run until RESUME_S after Redis is back (the stop
# file; at most 60 s), not for a fixed time that a slow machine can use up
# before the server returns: recovery must come within RESUME_S (the
# reconnect backoff is at most 1 s).
RESUME_S=3
export SLUICE_HAMMER_STOP_FILE="$RL_DIR/stop7"
SLUICE_HAMMER_RATE=5000 SLUICE_TIMEOUT_MS=$TO "$T" hammer "$URL/7" "3:1000000:1000:0" 0 64 stopkey 60000 >"$RL_DIR/stop_async" 2>&1 &
ha=$!
SLUICE_HAMMER_RATE=1000 SLUICE_TIMEOUT_MS=$TO "$T" hammer "$URL/7" "3:1000000:1000:0" 0 0 stopkey 60000 >"$RL_DIR/stop_sync" 2>&1 &
hs=$!
sleep 0.5
redis_kill a STOP
sleep 0.3
read -r rc ms < <(timed_check "$RL_DIR/deny.yaml" "$URL/7")
check "SIGSTOP: sluice check follows on_store_error deny (exit $rc, ${ms} ms)" test "$rc" = 1
read -r rc ms2 < <(timed_check "$RL_DIR/allow.yaml" "$URL/7")
check "SIGSTOP: sluice check follows on_store_error allow (exit $rc, ${ms2} ms)" test "$rc" = 0
sleep 0.5
redis_kill a CONT
sleep "$RESUME_S"
touch "$SLUICE_HAMMER_STOP_FILE"
wait "$ha"; wait "$hs"
a_out=$(cat "$RL_DIR/stop_async"); s_out=$(cat "$RL_DIR/stop_sync")
echo "# async: $a_out"; echo "# sync:  $s_out"
check "SIGSTOP: check took < 500 ms including process start (${ms}/${ms2} ms)" test "$ms" -lt 500 -a "$ms2" -lt 500
check "SIGSTOP async: decisions failed while stopped" test "$(field errors "$a_out")" -gt 0
check "SIGSTOP sync: decisions failed while stopped" test "$(field errors "$s_out")" -gt 0
check "SIGSTOP async: slowest decision <= timeout_ms $TO + ${MARGIN_MS} ms" within "$a_out" $TO
check "SIGSTOP sync: slowest decision <= timeout_ms $TO + ${MARGIN_MS} ms" within "$s_out" $TO
check "SIGCONT: async decisions succeed again" test "$(field tail_ok "$a_out")" -gt 0
check "SIGCONT: sync decisions succeed again" test "$(field tail_ok "$s_out")" -gt 0

# ---- 8 ------------------------------------------------------------------
export SLUICE_HAMMER_STOP_FILE="$RL_DIR/stop8"
SLUICE_HAMMER_RATE=5000 SLUICE_TIMEOUT_MS=$TO "$T" hammer "$URL/8" "3:1000000:1000:0" 0 64 killkey 60000 >"$RL_DIR/kill_async" 2>&1 &
ha=$!
SLUICE_HAMMER_RATE=1000 SLUICE_TIMEOUT_MS=$TO "$T" hammer "$URL/8" "3:1000000:1000:0" 0 0 killkey 60000 >"$RL_DIR/kill_sync" 2>&1 &
hs=$!
sleep 0.5
redis_kill a KILL
read -r rc ms < <(timed_check "$RL_DIR/deny.yaml" "$URL/8")
check "killed: sluice check follows on_store_error deny (exit $rc, $ms ms)" test "$rc" = 1 -a "$ms" -lt 500
sed 's/on_store_error: deny/on_store_error: local/' "$RL_DIR/deny.yaml" >"$RL_DIR/local.yaml"
out=$("$S" check --json --config "$RL_DIR/local.yaml" --rule r --key loc --store "$URL/8" 2>&1)
check "killed: on_store_error local decides in process (remaining 99 of 100)" \
  grep -q '"allowed":true,"limit":100,"remaining":99.*"store_error":true' <<<"$out"
out=$("$S" check --json --config "$RL_DIR/allow.yaml" --rule r --key loc --store "$URL/8" 2>&1)
check "killed: on_store_error allow (remaining = limit)" \
  grep -q '"allowed":true,"limit":100,"remaining":100.*"store_error":true' <<<"$out"
sleep 0.7
redis_start a
sleep "$RESUME_S"
touch "$SLUICE_HAMMER_STOP_FILE"
wait "$ha"; wait "$hs"
unset SLUICE_HAMMER_STOP_FILE
a_out=$(cat "$RL_DIR/kill_async"); s_out=$(cat "$RL_DIR/kill_sync")
echo "# async: $a_out"; echo "# sync:  $s_out"
for m in async sync; do
  o=$a_out; [ $m = sync ] && o=$s_out
  check "kill -9 + restart ($m): errors while down, then recovered by itself" \
    test "$(field errors "$o")" -gt 0 -a "$(field tail_ok "$o")" -gt 100
  check "kill -9 ($m): slowest decision <= timeout_ms $TO + ${MARGIN_MS} ms" within "$o" $TO
done
out=$("$S" check --json --config "$RL_DIR/ok.yaml" --rule r --key after --store "$URL/8" 2>&1)
check "after the restart: a fresh decision has no store error" grep -q '"store_error":false' <<<"$out"

echo "test_redis_store: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
