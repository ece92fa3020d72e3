#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# HTTP benchmark of sluiced (called by scripts/bench.sh; also runs alone).
#
# wrk drives, in the same run on the same machine and with the same keys
# (X-API-Key drawn from 10000 keys) and the same limit (token bucket 100/s,
# burst 100 per key):
#   - sluiced /v1/authorize and /v1/check on memory:// and on redis://
#     (a private redis-server), with W workers;
#   - nginx limit_req (zone keyed by $http_x_api_key, rate=100r/s burst=100
#     nodelay, `return 200`) with W worker processes;
# for W = 1 and 2.  Each is measured at peak (wrk -c64) and at about half of
# its own peak (wrk's delay() paces each connection) for the p99 there.
# cpu_us/req is the server's CPU time per request (from /proc), which stays
# comparable when other work shares the machine.  sys/req is the server's
# system calls per request, counted by `perf stat -e raw_syscalls:sys_enter`
# over one more peak run (only when perf may trace; "-" otherwise; the
# tracing slows that run, so it is not one of the measured ones).  The Redis
# ceiling is `sluice bench` against the same redis-server.
#
# Knobs: SLUICE_BENCH_HTTP_SECONDS (per run, default 5), SLUICE_BENCH_HTTP_REPEAT
# (peak = best of N runs, default 3), BUILD (default build),
# SLUICE_BENCH_HTTP_CALLGRIND=1 (also count the user-space instructions per
# request of nginx limit_req and sluiced /v1/authorize on memory:// under
# callgrind: steady figures on a machine shared with other work; needs valgrind).
# Prints tables; never fails on a number.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. "$root/scripts/bench_lib.sh"
build=${BUILD:-build}
secs=${SLUICE_BENCH_HTTP_SECONDS:-5}
repeat=${SLUICE_BENCH_HTTP_REPEAT:-3}   # peak = best of this many runs (shared machines are noisy)
SLUICED="$root/$build/bin/sluiced"
SLUICE="$root/$build/bin/sluice"
for t in wrk nginx redis-server; do
  command -v "$t" >/dev/null || { echo "skipped: $t not installed"; exit 0; }
done
[ -x "$SLUICED" ] || { echo "skipped: $SLUICED not built"; exit 0; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-http.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cat > "$tmp/sluice.yaml" <<'EOF'
identify: [header:X-API-Key, ip]
headers: both
on_store_error: allow
timeout_ms: 1000   # a loaded machine must not turn Redis rows into fail-open answers
rules:
  - name: bench
    limits: [ { algorithm: token_bucket, limit: 100, window: 1s, burst: 100 } ]
EOF

# wrk scripts: requests pre-built for 10000 keys; pace(ms) between requests
# of one connection when given (half-load runs).
common_lua='
local reqs, n, pace = {}, 10000, 0
local function setup_pace(args) if args[1] then pace = tonumber(args[1]) end end
request = function() return reqs[math.random(n)] end
delay = function() return pace end
'
cat > "$tmp/authorize.lua" <<EOF
$common_lua
init = function(args)
  setup_pace(args)
  for i = 1, n do
    reqs[i] = wrk.format("GET", "/v1/authorize", {["X-Original-URI"] = "/api/items",
      ["X-Original-Method"] = "GET", ["X-API-Key"] = "key" .. i})
  end
end
EOF
cat > "$tmp/check.lua" <<EOF
$common_lua
init = function(args)
  setup_pace(args)
  for i = 1, n do
    reqs[i] = wrk.format("POST", "/v1/check", {["Content-Type"] = "application/json"},
      '{"rule":"bench","key":"api_key:key' .. i .. '"}')
  end
end
EOF
cat > "$tmp/nginx.lua" <<EOF
$common_lua
init = function(args)
  setup_pace(args)
  for i = 1, n do
    reqs[i] = wrk.format("GET", "/api/items", {["X-API-Key"] = "key" .. i})
  end
end
EOF


# run_wrk PORT SCRIPT CONNS PACE_MS PIDS...: sets rps p50 p99 cpu
run_wrk() {
  local port=$1 script=$2 conns=$3 pace=$4; shift 4
  local c0 c1 n
  c0=$(cpu_secs "$@")
  wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$script" "http://127.0.0.1:$port/" -- "$pace" \
    > "$tmp/wrk.out" 2>&1
  c1=$(cpu_secs "$@")
  rps=$(awk '/^Requests\/sec:/ {printf "%d", $2}' "$tmp/wrk.out")
  n=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$tmp/wrk.out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$tmp/wrk.out")")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$tmp/wrk.out")
  cpu=$(us_per "$c0" "$c1" "$n")
  [ -n "$rps" ] || { rps=0; sed 's/^/    /' "$tmp/wrk.out"; }
}

# syscalls PORT SCRIPT PIDS...: sets sys (system calls per request, or "-")
can_trace=0
perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1 && can_trace=1
syscalls() {
  local port=$1 script=$2; shift 2
  sys=-
  [ "$can_trace" = 1 ] || return 0
  local p plist="" pp n cnt
  for p in "$@"; do plist="$plist${plist:+,}$p"; done
  perf stat -x, -e raw_syscalls:sys_enter -p "$plist" -o "$tmp/perf.out" 2>/dev/null &
  pp=$!
  sleep 0.3
  wrk -t1 -c64 -d2s -s "$script" "http://127.0.0.1:$port/" -- 0 > "$tmp/wrk.sys" 2>&1
  kill -INT "$pp" 2>/dev/null; wait "$pp" 2>/dev/null
  n=$(awk '/requests in/ {print $1}' "$tmp/wrk.sys")
  cnt=$(awk -F, '/raw_syscalls/ {print $1}' "$tmp/perf.out" 2>/dev/null)
  sys=$(awk -v c="${cnt:-0}" -v n="${n:-0}" 'BEGIN { if (n > 0 && c > 0) printf "%.2f", c / n; else print "-" }')
}

fmt='%-34s %3s %10s %9s %9s %8s %11s %9s %11s\n'
row() { # LABEL W PORT SCRIPT PIDS... : best of $repeat peak runs, then a half-load run
  local label=$1 w=$2 port=$3 script=$4; shift 4
  local i pk_p99=0 pk_cpu=-
  peak=0
  for i in $(seq 1 "$repeat"); do
    run_wrk "$port" "$script" 64 0 "$@"
    if [ "$rps" -gt "$peak" ]; then peak=$rps; pk_p99=$p99; pk_cpu=$cpu; fi
  done
  syscalls "$port" "$script" "$@"
  # about half of the peak: c connections, each sending one request per
  # ~1.3 ms (1 ms pause + ~0.3 ms answer): c = peak/2 * 1.3 ms
  local c=$(( peak * 13 / 20000 )); [ "$c" -lt 2 ] && c=2
  run_wrk "$port" "$script" "$c" 1 "$@"
  printf "$fmt" "$label" "$w" "$peak" "$pk_p99" "$pk_cpu" "$sys" "$rps" "$p99" "${ratio:-}"
}

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
  >/dev/null 2>&1 &
pids+=($!)
wait_port "$rport" || { echo "redis-server did not start"; exit 1; }
redis_url="redis://127.0.0.1:$rport"

echo "machine: $(nproc) CPUs, $(uname -r), load $(cut -d" " -f1-3 /proc/loadavg); wrk -t1, ${secs}s per run, peak = best of $repeat, 10000 keys, token bucket 100/s burst 100"
echo "peak: wrk -c64; half: wrk paced to about half of that peak (peak*0.00065 connections, 1 ms pause after each answer)"
printf "$fmt" "server / endpoint / store" "W" "peak_rps" "peak_p99" "cpu_us/req" "sys/req" "half_rps" "half_p99" "vs_nginx"

declare -A nginx_peak
# nginx_conf FILE WORKERS PORT [MAIN_DIRECTIVES]: the nginx limit_req server
# every comparison runs against (one definition, so the peak runs and the
# callgrind count measure the same configuration)
nginx_conf() {
  cat > "$1" <<EOF
worker_processes $2;
${4:-}
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;   # as sluiced: no reconnect every 1000 requests
  limit_req_zone \$http_x_api_key zone=k:64m rate=100r/s;
  limit_req_status 429;
  server {
    listen 127.0.0.1:$3;
    location / { limit_req zone=k burst=100 nodelay; return 200; }
  }
}
EOF
}

for w in 1 2; do
  # nginx limit_req with the same keys and limit
  nport=$(free_port)
  mkdir -p "$tmp/ng$w"
  nginx_conf "$tmp/ng$w/nginx.conf" "$w" "$nport"
  nginx -p "$tmp/ng$w" -e "$tmp/ng$w/error.log" -c "$tmp/ng$w/nginx.conf" -g "pid $tmp/nginx.pid;"
  wait_port "$nport" || { echo "nginx did not start"; cat "$tmp/ng$w/error.log"; exit 1; }
  npids=""
  for _ in $(seq 1 50); do
    npids=$(pgrep -P "$(cat "$tmp/nginx.pid")" | tr '\n' ' ')
    [ "$(echo $npids | wc -w)" -ge "$w" ] && break
    sleep 0.05
  done
  ratio=""
  # shellcheck disable=SC2086
  row "nginx limit_req" "$w" "$nport" "$tmp/nginx.lua" $npids
  nginx_peak[$w]=$peak
  kill "$(cat "$tmp/nginx.pid")"; rm -f "$tmp/nginx.pid"

  for store in memory redis; do
    url="memory://"; [ "$store" = redis ] && url=$redis_url
    sport=$(free_port)
    "$SLUICED" --config "$tmp/sluice.yaml" --listen "127.0.0.1:$sport" --store "$url" \
      --workers "$w" --log-level warn > "$tmp/sluiced.log" 2>&1 &
    spid=$!
    wait_port "$sport" || { echo "sluiced did not start"; cat "$tmp/sluiced.log"; exit 1; }
    for ep in authorize check; do
      ratio=""
      row "sluiced /v1/$ep $store" "$w" "$sport" "$tmp/$ep.lua" "$spid" >"$tmp/row"
      ratio=$(awk -v a="$peak" -v b="${nginx_peak[$w]}" 'BEGIN { if (b > 0) printf "%.2f", a / b }')
      sed "s/ *\$/ $ratio/" "$tmp/row"
      [ "$store" = redis ] && eval "redis_${ep}_$w=$peak"
    done
    kill "$spid"; wait "$spid" 2>/dev/null
  done
done

echo
echo "Redis store ceiling (sluice bench against the same redis-server):"
if [ -x "$SLUICE" ]; then
  cmd="sluice bench --config sluice.yaml --rule bench --store $redis_url --keys 10000 --requests 200000 --concurrency 64 --threads 2"
  echo "command: $cmd"
  if "$SLUICE" bench --config "$tmp/sluice.yaml" --rule bench --store "$redis_url" --keys 10000 \
      --requests 200000 --concurrency 64 --threads 2 > "$tmp/sb.out" 2>&1; then
    line=$(tail -n 1 "$tmp/sb.out"); echo "$line"
    ceil=$(echo "$line" | sed -n 's/^decisions_per_sec=\([0-9]*\).*/\1/p')
    for w in 1 2; do
      for ep in authorize check; do
        v=$(eval echo "\${redis_${ep}_$w:-0}")
        awk -v v="$v" -v c="${ceil:-0}" -v w="$w" -v ep="$ep" 'BEGIN { if (c > 0)
          printf "sluiced /v1/%s redis W=%d: %d req/s = %.0f%% of the store ceiling %d/s (target >= 80%%)\n", ep, w, v, 100 * v / c, c }'
      done
    done
  else
    echo "sluice bench failed:"; sed 's/^/    /' "$tmp/sb.out" | tail -n 5
  fi
else
  echo "skipped: $SLUICE not built"
fi

# User-space instructions per request under callgrind (counted only while
# wrk runs, after a warm-up): independent of what else runs on the machine.
if [ "${SLUICE_BENCH_HTTP_CALLGRIND:-0}" = 1 ]; then
  echo
  if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
    echo "callgrind: skipped (valgrind not installed)"
    exit 0
  fi
  echo "user-space instructions per request (callgrind, wrk -t1 -c8, 4 s after a 1 s warm-up; 1 worker):"
  cg_count() { # LABEL PORT SCRIPT CMD...
    local label=$1 port=$2 script=$3; shift 3
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$tmp/cg.out" "$@" \
      > "$tmp/cg.log" 2>&1 &
    local vp=$!
    wait_port "$port" || { echo "$label: did not start"; kill "$vp" 2>/dev/null; return; }
    wrk -t1 -c8 -d1s -s "$script" "http://127.0.0.1:$port/" -- 0 > /dev/null 2>&1
    callgrind_control -i on "$vp" > /dev/null 2>&1
    wrk -t1 -c8 -d4s -s "$script" "http://127.0.0.1:$port/" -- 0 > "$tmp/wrk.cg" 2>&1
    callgrind_control -i off "$vp" > /dev/null 2>&1
    kill "$vp"; wait "$vp" 2>/dev/null
    local n ir
    n=$(awk '/requests in/ {print $1}' "$tmp/wrk.cg")
    ir=$(awk '/^totals:/ {print $2}' "$tmp/cg.out")
    awk -v l="$label" -v n="${n:-0}" -v ir="${ir:-0}" \
      'BEGIN { if (n > 0) printf "  %-34s %8.0f\n", l, ir / n; else printf "  %-34s -\n", l }'
    rm -f "$tmp/cg.out"
  }
  nport=$(free_port)
  mkdir -p "$tmp/ngcg"
  nginx_conf "$tmp/ngcg/nginx.conf" 1 "$nport" "daemon off; master_process off;"
  cg_count "nginx limit_req" "$nport" "$tmp/nginx.lua" \
    nginx -p "$tmp/ngcg" -e "$tmp/ngcg/error.log" -c "$tmp/ngcg/nginx.conf" -g "pid $tmp/ngcg/nginx.pid;"
  sport=$(free_port)
  cg_count "sluiced /v1/authorize memory" "$sport" "$tmp/authorize.lua" \
    "$SLUICED" --config "$tmp/sluice.yaml" --listen "127.0.0.1:$sport" --store memory:// \
    --workers 1 --log-level warn
fi
