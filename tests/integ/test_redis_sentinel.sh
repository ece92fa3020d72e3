#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# redis+sentinel:// against 1 master, 1 replica and 3 sentinels on free
# loopback ports (all stopped on exit): decisions work through Sentinel
# discovery; the master is killed; after the sentinels promote the replica,
# decisions resume on it without a restart, on the async path (64 in
# flight) and on the blocking path, and a new process finds the new master.
set -uo pipefail
: "${SLUICE_BIN:?}" "${SLUICE_SRC:?}"
. "$SLUICE_SRC/tests/integ/redis_lib.sh"
redis_lib_init
command -v redis-sentinel >/dev/null || { echo "FAIL: redis-sentinel not installed"; exit 1; }
S="$SLUICE_BIN/sluice"
T="$SLUICE_BIN/store_test_redis"

pass=0
fail=0
check() {
  local d=$1; shift
  if "$@"; then pass=$((pass + 1)); echo "ok - $d"; else fail=$((fail + 1)); echo "FAIL - $d"; fi
}
field() { sed -n "s/.*\b$1=\([0-9-]*\).*/\1/p" <<<"$2"; }
# within OUTPUT TIMEOUT_MS: the slowest decision took at most timeout_ms + margin,
# plus however long the hammer process could not run at all (starve_us)
within() {
  local max st
  max=$(field max_us "$1"); st=$(field starve_us "$1")
  [ -n "$max" ] && [ "$max" -le $((($2 + MARGIN_MS) * 1000 + ${st:-0})) ]
}
wait_for() { # seconds, then a command
  local n=$(($1 * 50)); shift
  local i
  for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.02; done
  return 1
}

redis_start m
redis_start r --replicaof 127.0.0.1 "$RL_PORT_m"
link_up() { rcli r INFO replication | grep -q 'master_link_status:up'; }
check "replica in sync" wait_for 20 link_up
for s in s1 s2 s3; do
  sentinel_start "$s" "sentinel monitor mymaster 127.0.0.1 $RL_PORT_m 2" \
    "sentinel down-after-milliseconds mymaster 800" \
    "sentinel failover-timeout mymaster 4000" \
    "sentinel parallel-syncs mymaster 1"
done
knows_all() { # every sentinel, not only s1: a failover needs the votes of the others
  local s
  for s in s1 s2 s3; do
    [ "$(rcli "$s" SENTINEL sentinels mymaster 2>/dev/null | grep -c '^name$')" -ge 2 ] &&
      rcli "$s" SENTINEL replicas mymaster 2>/dev/null | grep -q "^$RL_PORT_r\$" || return 1
  done
}
check "sentinels see each other and the replica" wait_for 30 knows_all

URL="redis+sentinel://127.0.0.1:$RL_PORT_s1,127.0.0.1:$RL_PORT_s2,127.0.0.1:$RL_PORT_s3/mymaster"
MARGIN_MS=${SLUICE_TEST_MARGIN_MS:-50} # plus the hammer's measured starvation (within)
cat >"$RL_DIR/c.yaml" <<'Y'
timeout_ms: 1000
on_store_error: deny
rules:
  - name: r
    match: { path: /r }
    limits: [ { algorithm: token_bucket, limit: 100, window: 1h } ]
Y
out=$("$S" check --json --config "$RL_DIR/c.yaml" --rule r --key before --store "$URL" 2>&1)
check "decision through Sentinel discovery, no store error" grep -q '"store_error":false' <<<"$out"
check "its key is on the master" test "$(rcli m EXISTS 'sluice:{r:before}:0')" = 1
# a sentinel that is down or does not know the name is skipped
out=$("$S" check --json --config "$RL_DIR/c.yaml" --rule r --key before2 --store "redis+sentinel://127.0.0.1:1,127.0.0.1:$RL_PORT_s2/mymaster" 2>&1)
check "an unreachable first sentinel is skipped" grep -q '"store_error":false' <<<"$out"
out=$("$S" check --json --config "$RL_DIR/c.yaml" --rule r --key x --store "redis+sentinel://127.0.0.1:$RL_PORT_s1/nosuchmaster" 2>&1)
check "an unknown master name: on_store_error deny" grep -q '"store_error":true' <<<"$out"

printf '0 r k1\n0 r k1 5\n10 r k1 200\n1700000000000 r k2\n1700000000000 r k2 0\n' >"$RL_DIR/trace"
"$S" replay --config "$RL_DIR/c.yaml" --store memory:// <"$RL_DIR/trace" >"$RL_DIR/mem.out" 2>&1
"$S" replay --config "$RL_DIR/c.yaml" --store "$URL" <"$RL_DIR/trace" >"$RL_DIR/snt.out" 2>&1
check "sluice replay through Sentinel prints what memory:// prints" cmp -s "$RL_DIR/mem.out" "$RL_DIR/snt.out"
out=$("$S" bench --config "$RL_DIR/c.yaml" --rule r --store "$URL" --requests 5000 --concurrency 64 2>/dev/null | tail -1)
check "sluice bench through Sentinel: no errors ($out)" test "$(field errors "$out")" = 0
# The hammers run until the stop file appears, RESUME_S after the promotion
# (at most 120 s): a Sentinel election that fails is retried only after
# 2 x failover-timeout, so a fixed duration could end before any failover.
RESUME_S=5
export SLUICE_HAMMER_STOP_FILE="$RL_DIR/stop1"
SLUICE_HAMMER_RATE=5000 SLUICE_TIMEOUT_MS=50 "$T" hammer "$URL" "0:1000000000:31622400000:0" 0 64 fo 120000 >"$RL_DIR/async" 2>&1 &
ha=$!
SLUICE_HAMMER_RATE=1000 SLUICE_TIMEOUT_MS=50 "$T" hammer "$URL" "0:1000000000:31622400000:0" 0 0 fo 120000 >"$RL_DIR/sync" 2>&1 &
hs=$!
sleep 1
redis_kill m KILL
promoted() { rcli s1 SENTINEL get-master-addr-by-name mymaster | tail -1 | grep -qx "$RL_PORT_r"; }
t0=$(now_ms)
check "sentinels promote the replica" wait_for 60 promoted
echo "# failover took $(($(now_ms) - t0)) ms after the kill"
sleep "$RESUME_S"
touch "$SLUICE_HAMMER_STOP_FILE"
wait "$ha"; wait "$hs"
a_out=$(cat "$RL_DIR/async"); s_out=$(cat "$RL_DIR/sync")
echo "# async: $a_out"; echo "# sync:  $s_out"
check "async: decisions resumed on the promoted replica" test "$(field tail_ok "$a_out")" -gt 1000
check "sync: decisions resumed on the promoted replica" test "$(field tail_ok "$s_out")" -gt 100
check "async: slowest decision <= timeout_ms 50 + $MARGIN_MS ms" within "$a_out" 50
check "sync: slowest decision <= timeout_ms 50 + $MARGIN_MS ms" within "$s_out" 50
check "the new master holds the key written after the failover" test "$(rcli r EXISTS 'sluice:{fo}:0')" = 1
out=$("$S" check --json --config "$RL_DIR/c.yaml" --rule r --key after --store "$URL" 2>&1)
check "a new process finds the new master" grep -q '"store_error":false' <<<"$out"

# The old master comes back (as a replica of the new one); then a manual
# SENTINEL FAILOVER makes it master again while the new one stays up: the
# clients must leave a live server that turned replica (READONLY, CLIENT KILL).
redis_start m
m_replica() { rcli m INFO replication | grep -q 'master_link_status:up'; }
check "the old master rejoins as a replica" wait_for 30 m_replica
export SLUICE_HAMMER_STOP_FILE="$RL_DIR/stop2"
SLUICE_HAMMER_RATE=5000 SLUICE_TIMEOUT_MS=50 "$T" hammer "$URL" "0:1000000000:31622400000:0" 0 64 fo2 120000 >"$RL_DIR/async2" 2>&1 &
ha=$!
SLUICE_HAMMER_RATE=1000 SLUICE_TIMEOUT_MS=50 "$T" hammer "$URL" "0:1000000000:31622400000:0" 0 0 fo2 120000 >"$RL_DIR/sync2" 2>&1 &
hs=$!
sleep 1
back() { rcli s1 SENTINEL get-master-addr-by-name mymaster | tail -1 | grep -qx "$RL_PORT_m"; }
failover_back() { # the sentinel may not judge the replica ready yet (NOGOODSLAVE): ask again
  local i
  for ((i = 0; i < 30; i++)); do
    rcli s1 SENTINEL FAILOVER mymaster 2>/dev/null | grep -q '^OK' && wait_for 15 back && return 0
    back && return 0
    sleep 1
  done
  return 1
}
check "manual failover back to the old master" failover_back
sleep "$RESUME_S"
touch "$SLUICE_HAMMER_STOP_FILE"
wait "$ha"; wait "$hs"
a_out=$(cat "$RL_DIR/async2"); s_out=$(cat "$RL_DIR/sync2")
echo "# async: $a_out"; echo "# sync:  $s_out"
check "manual failover, async: decisions resumed on the new master" test "$(field tail_ok "$a_out")" -gt 1000
check "manual failover, sync: decisions resumed on the new master" test "$(field tail_ok "$s_out")" -gt 100
evalsha_calls() { rcli "$1" INFO commandstats | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\).*/\1/p'; }
check "manual failover: decisions ran on the new master ($(evalsha_calls m) EVALSHA there)" test "${evalsha_calls_m:=$(evalsha_calls m)}" -gt 1000
check "manual failover, async: slowest decision <= timeout_ms 50 + $MARGIN_MS ms" within "$a_out" 50
check "manual failover, sync: slowest decision <= timeout_ms 50 + $MARGIN_MS ms" within "$s_out" 50

echo "test_redis_sentinel: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
