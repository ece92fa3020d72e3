# SPDX-License-Identifier: MIT
# redis_lib.sh - sourced by the Redis integration tests: starts redis-server
# and redis-sentinel instances on free loopback ports in a temporary
# directory and stops every one of them (by the pid it started) on exit.
#   redis_lib_init            makes $RL_DIR and installs the EXIT trap
#   redis_start NAME [ARGS]   starts a server; its port is in RL_PORT_<NAME>
#   sentinel_start NAME CONF_LINES...   starts a sentinel
#   redis_kill NAME [SIG]     signals one instance (default KILL)
#   rcli NAME ARGS...         redis-cli against instance NAME
# Only processes this file started are ever signalled.

RL_PIDS=()
RL_DIR=""

redis_lib_cleanup() {
  local p
  for p in "${RL_PIDS[@]}"; do
    kill -CONT "$p" 2>/dev/null
    kill -KILL "$p" 2>/dev/null
  done
  for p in "${RL_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  [ -n "$RL_DIR" ] && rm -rf "$RL_DIR"
}

redis_lib_init() {
  RL_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sluice-redis.XXXXXX")
  trap redis_lib_cleanup EXIT
  command -v redis-server >/dev/null || { echo "FAIL: redis-server not installed"; exit 1; }
}

# A free loopback port (bind to port 0 and read what the kernel chose).
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_ping() { # port [timeout_s]
  local i
  for ((i = 0; i < ${2:-10} * 50; i++)); do
    redis-cli -p "$1" PING 2>/dev/null | grep -Eq "PONG|NOAUTH" && return 0
    sleep 0.02
  done
  echo "FAIL: nothing answers on port $1"; return 1
}

redis_start() { # NAME [extra redis-server args...]
  local name=$1; shift
  local port_var="RL_PORT_$name"
  local port=${!port_var:-$(free_port)}
  mkdir -p "$RL_DIR/$name"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$RL_DIR/$name" --logfile "$RL_DIR/$name/log" "$@" &
  local pid=$!
  RL_PIDS+=("$pid")
  printf -v "RL_PORT_$name" '%s' "$port"
  printf -v "RL_PID_$name" '%s' "$pid"
  wait_ping "$port" || { tail -5 "$RL_DIR/$name/log"; exit 1; }
}

sentinel_start() { # NAME then config lines
  local name=$1; shift
  local port; port=$(free_port)
  mkdir -p "$RL_DIR/$name"
  {
    echo "port $port"
    echo "bind 127.0.0.1"
    echo "dir $RL_DIR/$name"
    echo "logfile $RL_DIR/$name/log"
    printf '%s\n' "$@"
  } >"$RL_DIR/$name/sentinel.conf"
  redis-sentinel "$RL_DIR/$name/sentinel.conf" &
  local pid=$!
  RL_PIDS+=("$pid")
  printf -v "RL_PORT_$name" '%s' "$port"
  printf -v "RL_PID_$name" '%s' "$pid"
  wait_ping "$port" || { tail -5 "$RL_DIR/$name/log"; exit 1; }
}

redis_kill() { # NAME [SIG]
  local pid_var="RL_PID_$1"
  kill -"${2:-KILL}" "${!pid_var}" 2>/dev/null
  if [ "${2:-KILL}" = KILL ]; then wait "${!pid_var}" 2>/dev/null; fi
  return 0
}

rcli() { # NAME args...
  local port_var="RL_PORT_$1"; shift
  redis-cli -p "${!port_var}" "$@"
}

now_ms() { date +%s%3N; }

# vectors LABEL URL FLUSH_CMD...: every decision table of tests/vectors through
# `$S replay` on URL (a query of its own or none) with deny_cache on and off,
# after FLUSH_CMD, under a config that fails loudly on a store error; counts
# with the caller's ok/bad.
vectors() {
  local label=$1 url=$2 vp=0 vf=0 in name mode sep='?'; shift 2
  case $url in *\?*) sep='&' ;; esac
  for in in "$SLUICE_SRC"/tests/vectors/*.in; do
    name=${in%.in}
    grep -vE '^(timeout_ms|on_store_error):' "$name.yaml" >"$RL_DIR/vec.yaml"
    printf 'timeout_ms: 5000\non_store_error: deny\n' >>"$RL_DIR/vec.yaml"
    for mode in on off; do
      "$@" >/dev/null
      if "$S" replay --config "$RL_DIR/vec.yaml" --store "$url${sep}deny_cache=$mode&timeout_ms=5000" \
        <"$in" >"$RL_DIR/vec.out" 2>"$RL_DIR/vec.err" && cmp -s "$name.out" "$RL_DIR/vec.out"; then
        vp=$((vp + 1))
      else
        vf=$((vf + 1))
        echo "  $(basename "$name") deny_cache=$mode differs"
        diff "$name.out" "$RL_DIR/vec.out" | head -10 | sed 's/^/    /'
      fi
    done
  done
  if [ "$vf" = 0 ] && [ "$vp" -gt 0 ]; then
    ok "$label: $((vp / 2)) vector tables print their rows with deny_cache on and off"
  else
    bad "$label: $vf of $((vp + vf)) vector runs differ"
  fi
}
