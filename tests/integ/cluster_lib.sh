# SPDX-License-Identifier: MIT
# cluster_lib.sh - sourced by tests/integ/test_cluster*.sh and
# scripts/bench_cluster.sh: starts a private Redis Cluster (redis-server
# processes on free loopback ports, each with its bus port +10000 free too)
# in a temp dir, and kills all of it on exit.  Not a test by itself.
#
#   cluster_start N_MASTERS      N masters + N replicas, waits for cluster_state:ok
#   cluster_node_start           one more empty cluster node; its port in CL_LAST
#   cluster_url                  redis+cluster://127.0.0.1:<first port>
#   ccli PORT ARGS...            redis-cli -p PORT ARGS...
#   cluster_wait_ok [SECONDS]    until every node reports cluster_state:ok
#   cluster_masters              ports of the current masters (from CLUSTER NODES)
# CL_SERVER_ARGS: extra redis-server arguments for every node (e.g. --loadmodule ...)

# On tmpfs when there is one: every slot change makes each node fsync its
# nodes.conf, which on a busy disk stalls the server for 100 ms and more.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
  CL_DIR=$(mktemp -d /dev/shm/sluice-cluster.XXXXXX)
else
  CL_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sluice-cluster.XXXXXX")
fi
CL_PORTS=()
CL_PIDS=()

cluster_cleanup() {
  local p
  for p in "${CL_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  for p in "${CL_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$CL_DIR"
}

# free_port: a port P with P and P+10000 both free on 127.0.0.1
free_port() {
  /usr/bin/python3 - "$@" <<'PY'
import random, socket, sys
taken = set(int(a) for a in sys.argv[1:])
for _ in range(500):
    p = random.randint(20000, 54000)
    if p in taken or p + 10000 in taken:
        continue
    ok = True
    for q in (p, p + 10000):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", q))
        except OSError:
            ok = False
        finally:
            s.close()
    if ok:
        print(p)
        sys.exit(0)
sys.exit(1)
PY
}

ccli() { local p=$1; shift; redis-cli -h 127.0.0.1 -p "$p" "$@"; }

cluster_node_start() {
  local port
  port=$(free_port "${CL_PORTS[@]}") || { echo "no free port" >&2; return 1; }
  mkdir -p "$CL_DIR/$port"
  redis-server --port "$port" --bind 127.0.0.1 \
     --cluster-enabled yes --cluster-config-file "$CL_DIR/$port/nodes.conf" \
     --cluster-node-timeout "${CL_NODE_TIMEOUT:-2000}" --cluster-require-full-coverage "${CL_FULL_COVERAGE:-no}" --save '' --appendonly no \
     --daemonize no --logfile "$CL_DIR/$port/log" --dir "$CL_DIR/$port" ${CL_SERVER_ARGS:-} \
     </dev/null >/dev/null 2>&1 &
  CL_PIDS+=($!)
  CL_PORTS+=("$port")
  CL_LAST=$port
  local i
  for i in $(seq 1 100); do
    [ "$(ccli "$port" PING 2>/dev/null)" = PONG ] && return 0
    sleep 0.05
  done
  echo "redis-server on $port did not start" >&2
  return 1
}

cluster_pid_of() {
  local i
  for i in "${!CL_PORTS[@]}"; do
    [ "${CL_PORTS[$i]}" = "$1" ] && { echo "${CL_PIDS[$i]}"; return 0; }
  done
  return 1
}

cluster_wait_ok() {
  local limit=$(( ${1:-30} * 10 )) i p ok
  for i in $(seq 1 "$limit"); do
    ok=1
    for p in $(cluster_masters) ; do
      ccli "$p" CLUSTER INFO 2>/dev/null | grep -q '^cluster_state:ok' || ok=0
    done
    [ $ok = 1 ] && return 0
    sleep 0.1
  done
  return 1
}

# Ports of the masters that hold slots and are not failed, as seen by any live node.
cluster_masters() {
  local p
  for p in "${CL_PORTS[@]}"; do
    if ccli "$p" PING >/dev/null 2>&1; then
      ccli "$p" CLUSTER NODES 2>/dev/null |
        awk '$3 ~ /master/ && $3 !~ /fail/ && NF >= 9 { split($2, a, "[:@]"); print a[2] }'
      return 0
    fi
  done
}

cluster_start() {
  local n=$1 i port addrs=()
  for i in $(seq 1 $((n * 2))); do
    cluster_node_start || return 1
    addrs+=("127.0.0.1:$CL_LAST")
  done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
    >"$CL_DIR/create.log" 2>&1 || { cat "$CL_DIR/create.log" >&2; return 1; }
  cluster_wait_ok 30 || { echo "cluster did not reach cluster_state:ok" >&2; return 1; }
  # every replica attached and synced, so a failover has someone to promote
  for i in $(seq 1 200); do
    local synced=0
    for port in "${CL_PORTS[@]}"; do
      ccli "$port" INFO replication 2>/dev/null | grep -q 'master_link_status:up' && synced=$((synced + 1))
    done
    [ $synced -ge "$n" ] && return 0
    sleep 0.1
  done
  echo "replicas did not sync" >&2
  return 1
}

cluster_url() { echo "redis+cluster://127.0.0.1:${CL_PORTS[0]}"; }
