#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A real nginx (Debian nginx-light) in front of the real sluiced with
# auth_request, running examples/nginx.conf with its ports replaced by free
# ones: allowed requests reach the backend with sluiced's headers; denied ones
# get 429 with sluiced's headers (Retry-After, X-RateLimit-*, RateLimit*).
set -euo pipefail
SRC=${SLUICE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${SLUICE_BIN:-$SRC/build/bin}
if ! command -v nginx >/dev/null; then echo "SKIP: nginx not installed"; exit 0; fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid" 2>/dev/null)" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "port $1 not ready"; return 1
}
fail() { echo "FAIL: $*"; echo "--- sluiced log"; cat "$tmp/sluiced.log" || true; echo "--- nginx error log"; cat "$tmp/error.log" || true; exit 1; }

p_sluiced=$(free_port); p_public=$(free_port); p_app=$(free_port)

cat > "$tmp/sluice.yaml" <<EOF
deny_status: 403
trusted_proxies: [127.0.0.1/32]
rules:
  - name: api
    match: { path: /api/* }
    limits:
      - { algorithm: fixed_window, limit: 3, window: 1h }
EOF
"$BIN/sluiced" --config "$tmp/sluice.yaml" --listen "127.0.0.1:$p_sluiced" --workers 2 \
  >"$tmp/sluiced.log" 2>&1 &
pids+=($!)

sed -e "s/127.0.0.1:8080/127.0.0.1:$p_sluiced/" -e "s/127.0.0.1:8081/127.0.0.1:$p_public/" \
    -e "s/127.0.0.1:8000/127.0.0.1:$p_app/" "$SRC/examples/nginx.conf" > "$tmp/nginx.conf"
grep -q "$p_public" "$tmp/nginx.conf" || fail "port substitution"
nginx -p "$tmp" -e "$tmp/error.log" -c "$tmp/nginx.conf" -g "pid $tmp/nginx.pid; daemon off;" \
  >"$tmp/nginx.out" 2>&1 &
pids+=($!)
wait_port "$p_sluiced" || fail "sluiced did not start"
wait_port "$p_public" || fail "nginx did not start"

get() { # get PATH [curl args...] -> sets status, hdrs, body
  local path=$1; shift
  body=$(curl -s -D "$tmp/h" "$@" "http://127.0.0.1:$p_public$path")
  status=$(head -1 "$tmp/h" | cut -d' ' -f2)
  hdrs=$(tr -d '\r' < "$tmp/h")
}
hdr() { echo "$hdrs" | grep -i "^$1:" | head -1 | cut -d' ' -f2- ; }

for i in 1 2 3; do
  get /api/items -H "X-API-Key: alice"
  [ "$status" = 200 ] || fail "request $i: status $status"
  [ "$body" = "backend: /api/items" ] || fail "request $i did not reach the backend: $body"
  [ "$(hdr X-RateLimit-Limit)" = 3 ] || fail "X-RateLimit-Limit: $(hdr X-RateLimit-Limit)"
  [ "$(hdr X-RateLimit-Remaining)" = $((3 - i)) ] || fail "X-RateLimit-Remaining $(hdr X-RateLimit-Remaining)"
  [ "$(hdr RateLimit-Policy)" = '"api";q=3;w=3600' ] || fail "RateLimit-Policy: $(hdr RateLimit-Policy)"
  hdr RateLimit | grep -q "^\"api\";r=$((3 - i));t=" || fail "RateLimit: $(hdr RateLimit)"
done
echo "ok: allowed requests reach the backend with sluiced's headers"

get /api/items -H "X-API-Key: alice"
[ "$status" = 429 ] || fail "denied request: status $status"
case "$body" in *quota-exceeded*) ;; *) fail "denied body: $body" ;; esac
[ "$(hdr X-RateLimit-Remaining)" = 0 ] || fail "denied X-RateLimit-Remaining: $(hdr X-RateLimit-Remaining)"
ra=$(hdr Retry-After)
[ -n "$ra" ] && [ "$ra" -ge 1 ] && [ "$ra" -le 3600 ] || fail "Retry-After: '$ra'"
hdr RateLimit | grep -q '^"api";r=0;t=' || fail "denied RateLimit: $(hdr RateLimit)"
reset=$(hdr X-RateLimit-Reset); now=$(date +%s)
[ "$reset" -gt "$now" ] && [ "$reset" -le $((now + 3601)) ] || fail "X-RateLimit-Reset $reset"
echo "ok: denied request gets 429 with Retry-After $ra and sluiced's headers"

get /api/items -H "X-API-Key: bob"
[ "$status" = 200 ] && [ "$(hdr X-RateLimit-Remaining)" = 2 ] || fail "another key: $status"
get /public
[ "$status" = 200 ] && [ "$body" = "backend: /public" ] || fail "unlimited path: $status $body"
echo "ok: other keys and unlimited paths pass"

# sluiced counted what nginx asked
m=$(curl -s "http://127.0.0.1:$p_sluiced/metrics")
echo "$m" | grep -q '^sluice_decisions_total{rule="api",result="allowed"} 4$' || fail "metrics allowed: $m"
echo "$m" | grep -q '^sluice_decisions_total{rule="api",result="denied"} 1$' || fail "metrics denied"
echo "ok: sluiced metrics match"
echo "test_nginx: all passed"
