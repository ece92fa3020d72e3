#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The redis+cluster:// store against a real Redis Cluster built here: six
# redis-server processes (3 masters + 3 replicas, cluster-node-timeout
# 2000 ms, cluster-require-full-coverage no) on free loopback ports, created
# with redis-cli --cluster create --cluster-replicas 1, all killed on exit.
#   1. keys spread over every master (sluice replay of 600 keys, DBSIZE);
#   2. every decision vector (tests/vectors) prints on the cluster what it
#      prints on memory:// (and the expected .out);
#   3. exactness under concurrency: 3 threads + 1 async loop on 8 hot keys
#      admit exactly the limit (store_test_cluster_live exact);
#   4. slots moved with live keys (redis-cli --cluster reshard, 1000 slots)
#      during traffic: no failed decision, no over-admission, no lost state;
#   5. a fourth master added and the slots rebalanced during traffic: no
#      failed decision, no over-admission, and the new master serves
#      decisions; then drained (rebalance to weight 0) and removed (del-node)
#      during traffic: no failed decision, no over-admission;
#   6. kill -9 of a master under load: decisions for its slots fail (per
#      on_store_error) until its replica is promoted, then succeed without a
#      restart; decisions for other masters never wait on it (at most 1 in
#      1000 may time out on a loaded machine); none is slower than
#      timeout_ms + 150 ms (timeout_ms 100 here); prints the outage and the
#      lost writes;
#   7. the same with ?wait=1 (WAIT 1 after every decision): prints its lost
#      writes.
# The figures printed by 6 and 7 are recorded in docs/cluster.md.
set -uo pipefail
: "${SLUICE_BIN:?}" "${SLUICE_SRC:?}"
S="$SLUICE_BIN/sluice"
D="$SLUICE_BIN/store_test_cluster_live"
for b in "$S" "$D"; do [ -x "$b" ] || { echo "FAIL: $b missing"; exit 1; }; done
for b in redis-server redis-cli; do
  command -v $b >/dev/null || { echo "FAIL: $b not installed"; exit 1; }
done
. "$SLUICE_SRC/tests/integ/cluster_lib.sh"
trap cluster_cleanup EXIT
trap "exit 1" INT TERM
started=$(date +%s)

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
field() { sed -n "s/.*\b$1=\([0-9.-]*\).*/\1/p" <<<"$2" | head -n 1; }
flush_all() { local p; for p in $(cluster_masters); do ccli "$p" FLUSHALL >/dev/null; done; }
node_id() { ccli "$1" CLUSTER MYID; }
# slot ranges of the master on port $1, "a-b,c-d" (migration markers skipped)
slot_ranges() {
  ccli "$1" CLUSTER NODES | awk '/myself/ { for (i = 9; i <= NF; i++) if ($i !~ /^\[/) print $i }' |
    paste -sd, -
}
# pid of the cluster node on port $1
pid_of() { cluster_pid_of "$1"; }

echo "# starting a 3-master cluster"
cluster_start 3 || { echo "FAIL: cluster did not start"; exit 1; }
SEED=${CL_PORTS[0]}
URL=$(cluster_url)
echo "# $URL, masters: $(cluster_masters | paste -sd' ' -)"
export SLUICE_TIMEOUT_MS=100
LAT_MS=250 # timeout_ms + 150 ms margin (2-core machines running the cluster too)
# Traffic is paced (decisions/s over 3 threads and an async loop): a driver
# that saturates the CPUs the cluster runs on measures its own starvation.
RATE=${SLUICE_CLUSTER_RATE:-8000}

cat >"$CL_DIR/spread.yaml" <<'Y'
timeout_ms: 1000
on_store_error: deny
rules:
  - name: s
    match: { path: /s }
    limits: [ { algorithm: token_bucket, limit: 10, window: 1h } ]
Y

# ---- 1 -------------------------------------------------------------------
for i in $(seq 0 599); do echo "1000 s k$i"; done >"$CL_DIR/spread.in"
"$S" replay --config "$CL_DIR/spread.yaml" --store "$URL" <"$CL_DIR/spread.in" >"$CL_DIR/spread.out" 2>&1
rc=$?
allowed=$(grep -c '^1' "$CL_DIR/spread.out")
counts=""
spread_ok=1
for p in $(cluster_masters); do
  n=$(ccli "$p" DBSIZE)
  counts="$counts $p:$n"
  [ "$n" -gt 50 ] || spread_ok=0
done
if [ $rc -eq 0 ] && [ "$allowed" -eq 600 ] && [ $spread_ok -eq 1 ]; then
  ok "600 keys spread over every master (keys per master:$counts)"
else
  bad "spread: exit $rc, allowed $allowed of 600, keys per master:$counts"
fi

# ---- 2 -------------------------------------------------------------------
vec_pass=0
vec_fail=0
for in in "$SLUICE_SRC"/tests/vectors/*.in; do
  name=${in%.in}
  flush_all
  # a store failure would print an on_store_error row: make it fail loudly
  # instead, and give slow (sanitizer) builds time
  cfg="$CL_DIR/vec.yaml"
  grep -vE '^(timeout_ms|on_store_error):' "$name.yaml" >"$cfg"
  printf 'timeout_ms: 2000\non_store_error: deny\n' >>"$cfg"
  "$S" replay --config "$name.yaml" --store memory:// <"$in" >"$CL_DIR/mem.out" 2>&1
  "$S" replay --config "$cfg" --store "$URL" <"$in" >"$CL_DIR/cl.out" 2>"$CL_DIR/cl.err"
  rc=$?
  if [ $rc -eq 0 ] && cmp -s "$CL_DIR/mem.out" "$CL_DIR/cl.out" && cmp -s "$name.out" "$CL_DIR/cl.out"; then
    vec_pass=$((vec_pass + 1))
  else
    vec_fail=$((vec_fail + 1))
    echo "  $(basename "$name"): exit $rc"
    sed 's/^/    /' "$CL_DIR/cl.err" | head -5
    diff "$CL_DIR/mem.out" "$CL_DIR/cl.out" | head -10 | sed 's/^/    /'
  fi
done
if [ $vec_fail -eq 0 ] && [ $vec_pass -gt 0 ]; then
  ok "decision vectors: $vec_pass tables print the same on redis+cluster:// as on memory://"
else
  bad "decision vectors: $vec_fail of $((vec_pass + vec_fail)) differ"
fi
flush_all

# ---- 3 -------------------------------------------------------------------
if out=$(SLUICE_CLUSTER_URL="$URL" "$D" exact 2>&1); then
  ok "exactness under concurrency: $(grep '^exact:' <<<"$out")"
else
  bad "exactness under concurrency"; echo "$out" | tail -20
fi
flush_all

# run_load SECONDS ARGS...: the driver in the background; waits until traffic flows
run_load() {
  local secs=$1; shift
  rm -f "$CL_DIR/ready"
  SLUICE_CLUSTER_URL=${LOAD_URL:-$URL} "$D" load "$secs" --ready "$CL_DIR/ready" --rate "$RATE" "$@" \
    >"$CL_DIR/load.out" 2>&1 &
  LOAD_PID=$!
  local i
  for i in $(seq 1 100); do [ -f "$CL_DIR/ready" ] && return 0; sleep 0.1; done
  return 1
}
# load_done DESCRIPTION: waits for the driver; ok when it passed
load_done() {
  wait "$LOAD_PID"
  local rc=$?
  LOAD_OUT=$(cat "$CL_DIR/load.out")
  if [ $rc -eq 0 ]; then
    ok "$1: $(grep -E '^(decisions|lost|max_latency)' <<<"$LOAD_OUT" | paste -sd' ' -)"
  else
    bad "$1 (driver exit $rc)"; sed 's/^/    /' <<<"$LOAD_OUT" | tail -15
  fi
}

# ---- 4 -------------------------------------------------------------------
masters=($(cluster_masters))
from=${masters[0]}
to=${masters[1]}
run_load 8 --exact --max-errors 0 --latency-ms $LAT_MS || bad "reshard: traffic did not start"
sleep 1
if redis-cli --cluster reshard "127.0.0.1:$SEED" --cluster-from "$(node_id "$from")" \
    --cluster-to "$(node_id "$to")" --cluster-slots 1000 --cluster-yes \
    >"$CL_DIR/reshard.log" 2>&1; then
  echo "# resharded 1000 slots $from -> $to during traffic ($(grep -c 'Moving slot' "$CL_DIR/reshard.log") slot moves)"
else
  bad "redis-cli --cluster reshard failed"; tail -5 "$CL_DIR/reshard.log"
fi
load_done "1000 slots resharded with live keys during traffic: no failed decision, none lost, none over the limit"
cluster_wait_ok 20 || bad "cluster not ok after the reshard"

# ---- 5 -------------------------------------------------------------------
cluster_node_start || bad "fourth master did not start"
NEW=$CL_LAST
redis-cli --cluster add-node "127.0.0.1:$NEW" "127.0.0.1:$SEED" >"$CL_DIR/add.log" 2>&1 ||
  { bad "add-node failed"; tail -5 "$CL_DIR/add.log"; }
for i in $(seq 1 100); do
  ccli "$SEED" CLUSTER NODES | grep -q ":$NEW@" && ccli "$NEW" CLUSTER INFO | grep -q 'cluster_state:ok' && break
  sleep 0.1
done
run_load 10 --exact --max-errors 0 --latency-ms $LAT_MS || bad "rebalance: traffic did not start"
sleep 1
redis-cli --cluster rebalance "127.0.0.1:$SEED" --cluster-use-empty-masters --cluster-yes \
  >"$CL_DIR/rebalance.log" 2>&1 || { bad "rebalance failed"; tail -5 "$CL_DIR/rebalance.log"; }
load_done "fourth master added and slots rebalanced during traffic: no failed decision, none lost, none over the limit"
calls=$(ccli "$NEW" INFO commandstats | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\).*/\1/p')
keys=$(ccli "$NEW" DBSIZE)
if [ "${calls:-0}" -gt 0 ] && [ "${keys:-0}" -gt 0 ]; then
  ok "traffic reaches the new master (port $NEW: $calls EVALSHA, $keys keys, slots $(slot_ranges "$NEW" | cut -c1-40))"
else
  bad "the new master $NEW got no traffic (EVALSHA ${calls:-0}, keys ${keys:-0})"
fi
cluster_wait_ok 20 || bad "cluster not ok after the rebalance"

# ---- 5b: the fourth master drained and removed during traffic -------------
NEW_ID=$(node_id "$NEW")
run_load 10 --exact --max-errors 0 --latency-ms $LAT_MS || bad "removal: traffic did not start"
sleep 1
redis-cli --cluster rebalance "127.0.0.1:$SEED" --cluster-weight "$NEW_ID=0" --cluster-yes \
  >"$CL_DIR/drain.log" 2>&1 || { bad "draining the fourth master failed"; tail -5 "$CL_DIR/drain.log"; }
redis-cli --cluster del-node "127.0.0.1:$SEED" "$NEW_ID" >"$CL_DIR/del.log" 2>&1 ||
  { bad "del-node failed"; tail -5 "$CL_DIR/del.log"; }
load_done "fourth master drained and removed during traffic: no failed decision, none lost, none over the limit"
if ccli "$SEED" CLUSTER NODES | grep -q "$NEW_ID"; then
  bad "the removed master is still in the cluster"
else
  ok "the removed master left the cluster; its slots were served elsewhere throughout"
fi
cluster_wait_ok 20 || bad "cluster not ok after the removal"
flush_all

# ---- 6, 7 ----------------------------------------------------------------
# failover LABEL URL: kill -9 a master that has a replica (not the seed)
# 1 s into a load that runs 14 s, or longer: until RESUME_S after the cluster
# is whole again (the stop file; at most 60 s: a failover took 11.5 s on a
# loaded machine, and the fixed 14 s run ended 1.3 s after its last failure,
# under the 2 s of recovery asked); checks and prints the figures.
RESUME_S=4
failover() {
  local label=$1 victim="" p
  LOAD_URL=$2
  for p in $(cluster_masters); do
    [ "$p" = "$SEED" ] && continue
    ccli "$p" INFO replication | grep -q '^connected_slaves:[1-9]' && { victim=$p; break; }
  done
  [ -n "$victim" ] || { bad "$label: no master with a replica to kill"; return; }
  local ranges
  ranges=$(slot_ranges "$victim")
  rm -f "$CL_DIR/stop"
  run_load 60 --dead-ranges "$ranges" --latency-ms $LAT_MS --stop-file "$CL_DIR/stop" ||
    bad "$label: traffic did not start"
  local t_load; t_load=$(date +%s%3N)
  sleep 1
  local vpid; vpid=$(pid_of "$victim"); { kill -9 "$vpid"; wait "$vpid"; } 2>/dev/null
  echo "# $label: killed master $victim (slots $(cut -c1-60 <<<"$ranges")) under load"
  # whole again: the seed sees the victim's slots on another node, all ok
  promoted() {
    ! ccli "$SEED" CLUSTER NODES | awk -v p=":$victim@" \
      'index($2, p) && $3 ~ /master/ && NF >= 9 { f = 1 } END { exit !f }' &&
      ccli "$SEED" CLUSTER INFO | grep -q '^cluster_slots_ok:16384'
  }
  local i
  for ((i = 0; i < 500; i++)); do promoted && break; sleep 0.1; done
  promoted || bad "$label: no replica took over the killed master's slots"
  sleep "$RESUME_S"
  # at least the 14 s of before, so the other masters' share of errors
  # (at most 1 in 1000) is measured over as many decisions
  while [ $(($(date +%s%3N) - t_load)) -lt 14000 ]; do sleep 0.1; done
  touch "$CL_DIR/stop"
  load_done "$label: kill -9 of a master under load, other masters unaffected, no decision over ${LAT_MS} ms"
  local outage last lost run
  outage=$(field outage_ms "$LOAD_OUT")
  last=$(field last_error_ms "$LOAD_OUT")
  run=$(field run_ms "$LOAD_OUT")
  lost=$(field lost "$LOAD_OUT")
  echo "# $label: decisions for the dead master's slots failed for ${outage} ms (first failure to last); lost writes (over-admission) ${lost}"
  echo "FIGURE $label outage_ms=$outage lost=$lost $(grep -E '^(decisions|max_latency)' <<<"$LOAD_OUT" | paste -sd' ' -)"
  # recovered: the last 2 s of the run without a failure (as before: 12000 of 14000)
  if [ -n "$last" ] && [ -n "$run" ] && [ "$last" -ge 0 ] && [ "$last" -lt $((run - 2000)) ]; then
    ok "$label: decisions succeed again without a restart (last failure ${last} ms into the run, run ${run} ms)"
  else
    bad "$label: decisions did not recover (last failure at ${last:-?} ms)"
  fi
  cluster_wait_ok 20 || bad "$label: cluster not ok after the failover"
  flush_all
  LOAD_URL=""
}
failover "failover" "$URL"
failover "failover with ?wait=1" "$URL?wait=1"

echo "# cluster suite took $(( $(date +%s) - started )) s"
echo "test_cluster: $pass passed, $fail failed"
[ $fail -eq 0 ]
