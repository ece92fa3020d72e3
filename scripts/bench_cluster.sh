#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make bench, Redis Cluster section (called by scripts/bench.sh): in one run
# on this machine, starts one standalone redis-server and a three-master
# cluster (three replicas too, as in production; tests/integ/cluster_lib.sh)
# and runs the same `sluice bench` against both:
#   - 1 decision in flight (blocking path) and 64 in flight (async path,
#     pipelined: one connection per master);
#   - the cluster with ?wait=1 (WAIT 1 after each decision): the price of
#     not losing acknowledged state in a failover.
# Prints decisions/s, p50 and p99 per row, and the ratios cluster / one
# node.  All processes share the machine's cores, so a cluster on one host
# measures routing overhead, not the scale-out it gives across hosts.
# Knobs: BUILD (default build), SLUICE_BENCH_CLUSTER_N (decisions per run,
# default 200000).  Nothing passes or fails on a number; a run that breaks
# exits 1.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${BUILD:-build}
n=${SLUICE_BENCH_CLUSTER_N:-200000}
S="$root/$build/bin/sluice"
for t in redis-server redis-cli; do
  command -v $t >/dev/null || { echo "skipped: $t not installed"; exit 0; }
done
[ -x "$S" ] || { echo "bench_cluster: $S missing (build first)"; exit 1; }

. "$root/tests/integ/cluster_lib.sh"
trap cluster_cleanup EXIT
trap "exit 1" INT TERM
fail=0

# the standalone node: a plain redis-server in the same temp dir
SP=$(free_port) || { echo "no free port"; exit 1; }
redis-server --port "$SP" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --dir "$CL_DIR" --logfile "$CL_DIR/single.log" </dev/null >/dev/null 2>&1 &
CL_PIDS+=($!)
for i in $(seq 1 100); do [ "$(ccli "$SP" PING 2>/dev/null)" = PONG ] && break; sleep 0.05; done
cluster_start 3 || { echo "bench_cluster: the cluster did not start"; exit 1; }
CURL=$(cluster_url)

cat >"$CL_DIR/bench.yaml" <<'Y'
timeout_ms: 100
on_store_error: deny
rules:
  - name: fixed_window
    limits: [ { algorithm: fixed_window, limit: 100, window: 1s } ]
  - name: multi
    limits:
      - { algorithm: sliding_window, limit: 100, window: 1s }
      - { algorithm: token_bucket, limit: 1000, window: 1m, burst: 200 }
Y

re='^decisions_per_sec=([0-9]+) p50_us=([0-9.]+) p99_us=([0-9.]+) p999_us=([0-9.]+) allowed=([0-9]+) denied=([0-9]+) errors=([0-9]+)$'
fmt='%-14s %-30s %9s %12s %9s %9s %7s\n'
declare -A rate p99
row() { # RULE LABEL URL CONCURRENCY
  local rule=$1 label=$2 url=$3 conc=$4 out
  if ! out=$("$S" bench --config "$CL_DIR/bench.yaml" --rule "$rule" --store "$url" \
      --keys 100000 --requests "$n" --concurrency "$conc" 2>/dev/null | tail -n 1) ||
      ! [[ "$out" =~ $re ]]; then
    printf "$fmt" "$rule" "$label" "$conc" FAILED - - -
    fail=1
    return
  fi
  rate[$rule,$label,$conc]=${BASH_REMATCH[1]}
  p99[$rule,$label,$conc]=${BASH_REMATCH[3]}
  printf "$fmt" "$rule" "$label" "$conc" "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" \
    "${BASH_REMATCH[3]}" "${BASH_REMATCH[7]}"
}

echo "one node: redis://127.0.0.1:$SP; cluster: $CURL (3 masters + 3 replicas); $(nproc) CPUs"
echo "command: sluice bench --config <bench.yaml> --rule R --store URL --keys 100000 --requests $n --concurrency C"
printf "$fmt" rule store in_flight "decisions/s" p50_us p99_us errors
for rule in fixed_window multi; do
  for conc in 1 64; do
    row "$rule" "one node" "redis://127.0.0.1:$SP" "$conc"
    row "$rule" "cluster" "$CURL" "$conc"
    row "$rule" "cluster ?wait=1" "$CURL?wait=1" "$conc"
  done
done
echo
echo "ratios (same run):"
for rule in fixed_window multi; do
  for conc in 1 64; do
    one=${rate[$rule,one node,$conc]:-0}
    cl=${rate[$rule,cluster,$conc]:-0}
    w=${rate[$rule,cluster ?wait=1,$conc]:-0}
    [ "$one" -gt 0 ] && [ "$cl" -gt 0 ] && [ "$w" -gt 0 ] || continue
    awk -v r="$rule" -v c="$conc" -v one="$one" -v cl="$cl" -v w="$w" \
      -v p1="${p99[$rule,one node,$conc]}" -v pc="${p99[$rule,cluster,$conc]}" \
      -v pw="${p99[$rule,cluster ?wait=1,$conc]}" 'BEGIN {
      printf "%-13s in flight %-3d cluster/one node: %.2fx decisions/s, p99 %.2fx;  WAIT 1 costs %.0f%% of the cluster'"'"'s decisions/s, p99 %.2fx\n",
        r, c, cl / one, pc / p1, 100 * (1 - w / cl), pw / pc }'
  done
done
exit $fail
