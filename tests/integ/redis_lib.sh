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
