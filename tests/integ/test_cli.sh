#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Integration test of the `sluice` command line (SPEC section 6): exit codes
# of check (0 allowed, 1 denied, 2 no decision), its JSON fields, request
# matching with headers and tiers, lint on every tests/configs/*.yaml (bad
# ones carry "# expect: <line>: <substring>"), replay of a trace with exact
# expected output and of bad lines (exit 2, "line N:"), the format of
# bench's last line, and check/replay/bench against a redis-server it
# starts on a free port.  Needs SLUICE_BIN (dir of the sluice binary) and
# SLUICE_SRC (the source tree).
set -uo pipefail

: "${SLUICE_BIN:?set SLUICE_BIN to the directory holding sluice}"
: "${SLUICE_SRC:?set SLUICE_SRC to the source tree}"
S="$SLUICE_BIN/sluice"
[ -x "$S" ] || { echo "FAIL: $S is not executable"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-cli.XXXXXX")
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT

pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# run CMD...: runs with output in $tmp/out, $tmp/err; sets $rc.
run() { "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?; }

# expect_rc CODE DESCRIPTION CMD...
expect_rc() {
  local want=$1 what=$2
  shift 2
  run "$@"
  if [ "$rc" -eq "$want" ]; then ok; else
    bad "$what: exit $rc, want $want"; sed 's/^/    out: /' "$tmp/out"; sed 's/^/    err: /' "$tmp/err"
  fi
}

# json_get EXPR: evaluates a Python expression on j = the JSON in $tmp/out.
json_get() {
  /usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
    "$tmp/out" "$1" 2>&1 | tail -n 1
}

# expect_json EXPR WANT DESCRIPTION
expect_json() {
  local got
  got=$(json_get "$1")
  if [ "$got" = "$2" ]; then ok; else bad "$3: $1 = '$got', want '$2'"; fi
}

cfg="$tmp/cli.yaml"
cat >"$cfg" <<'YAML'
store: memory://
rules:
  - name: login
    match: { method: POST, path: /api/auth/login }
    key: ip
    limits:
      - { algorithm: fixed_window, limit: 1, window: 1m }
  - name: api
    match: { path: /api/* }
    limits:
      - { algorithm: token_bucket, limit: 10, window: 1s, burst: 5 }
  - name: tiered
    match: { path: /t/* }
    key: ip
    tiers:
      free:    [ { algorithm: fixed_window, limit: 2, window: 1s } ]
      premium: [ { algorithm: fixed_window, limit: 100, window: 1s } ]
  - name: daily
    match: { path: /daily }
    limits:
      - { algorithm: fixed_window, limit: 1, window: 1d }
  - name: trial
    match: { path: /trial }
    shadow: true
    limits:
      - { algorithm: leaky_bucket, limit: 2, window: 1s }
YAML

# ---- general ------------------------------------------------------------
expect_rc 0 "--version" "$S" --version
grep -q "^sluice [0-9]" "$tmp/out" && ok || bad "--version prints 'sluice X.Y.Z'"
expect_rc 0 "--help" "$S" --help
grep -q "replay" "$tmp/out" && ok || bad "--help lists the commands"
expect_rc 2 "no command" "$S"
expect_rc 2 "unknown command" "$S" frobnicate
for c in check lint replay bench; do
  expect_rc 0 "$c --help" "$S" $c --help
done

# ---- check: exit codes --------------------------------------------------
expect_rc 0 "check allowed" "$S" check --config "$cfg" --rule login --key ip:192.0.2.1
grep -q "allowed" "$tmp/out" && ok || bad "check text output says allowed"
expect_rc 1 "check denied: cost above capacity" \
  "$S" check --config "$cfg" --rule login --key ip:192.0.2.1 --cost 2
grep -q "denied" "$tmp/out" && ok || bad "check text output says denied"
expect_rc 0 "check peek (cost 0)" "$S" check --config "$cfg" --rule login --key k --cost 0

expect_rc 2 "check without --config" "$S" check --rule login --key k
expect_rc 2 "check with missing config" "$S" check --config "$tmp/nope.yaml" --rule login --key k
printf 'rules: [\n' >"$tmp/broken.yaml"
expect_rc 2 "check with a broken config" "$S" check --config "$tmp/broken.yaml" --rule login --key k
expect_rc 2 "check unknown rule" "$S" check --config "$cfg" --rule nosuch --key k
expect_rc 2 "check empty key" "$S" check --config "$cfg" --rule login --key ''
expect_rc 2 "check oversized key" "$S" check --config "$cfg" --rule login --key "$(head -c 600 /dev/zero | tr '\0' x)"
expect_rc 2 "check --rule without --key" "$S" check --config "$cfg" --rule login
expect_rc 2 "check with no request" "$S" check --config "$cfg"
expect_rc 2 "check mixes --rule and --path" "$S" check --config "$cfg" --rule login --key k --path /x
expect_rc 2 "check --cost abc" "$S" check --config "$cfg" --rule login --key k --cost abc
expect_rc 2 "check --cost -1" "$S" check --config "$cfg" --rule login --key k --cost -1
expect_rc 2 "check --cost 1e3" "$S" check --config "$cfg" --rule login --key k --cost 1e3
expect_rc 2 "check --cost too big" "$S" check --config "$cfg" --rule login --key k --cost 1000000001
expect_rc 2 "check unknown flag" "$S" check --config "$cfg" --rule login --key k --frob
expect_rc 2 "check stray argument" "$S" check --config "$cfg" --rule login --key k extra
expect_rc 2 "check bad --header" "$S" check --config "$cfg" --path /api/x --header nocolon
expect_rc 2 "check bad --store URL" "$S" check --config "$cfg" --rule login --key k --store 'ftp://x'
expect_rc 2 "check no rule matches" "$S" check --config "$cfg" --method GET --path /nowhere --ip 192.0.2.1

# ---- check: JSON --------------------------------------------------------
expect_rc 0 "check --json allowed" "$S" check --config "$cfg" --rule login --key ip:192.0.2.1 --json
expect_json 'len(open(sys.argv[1]).read().strip().splitlines())' 1 "one JSON line"
expect_json 'j["allowed"]' True "json allowed"
expect_json 'j["limit"]' 1 "json limit"
expect_json 'j["remaining"]' 0 "json remaining"
expect_json '0 < j["reset_after_ms"] <= 60000' True "json reset_after_ms"
expect_json 'j["retry_after_ms"]' 0 "json retry_after_ms"
expect_json 'j["delay_ms"]' 0 "json delay_ms"
expect_json 'j["rule"]' login "json rule"
expect_json 'j["key"]' ip:192.0.2.1 "json key"
expect_json 'len(j["limits"])' 1 "json limits[]"
expect_json 'j["limits"][0]["algorithm"]' fixed_window "json limits[0].algorithm"
expect_json 'j["limits"][0]["window_ms"]' 60000 "json limits[0].window_ms"
expect_json 'j["limits"][0]["allowed"]' True "json limits[0].allowed"

expect_rc 1 "check --json denied" "$S" check --config "$cfg" --rule login --key ip:192.0.2.1 --cost 2 --json
expect_json 'j["allowed"]' False "json denied"
expect_json 'j["retry_after_ms"]' -1 "cost above capacity: retry_after_ms -1"
expect_json 'j["remaining"]' 1 "denied leaves remaining untouched"

expect_rc 0 "token bucket --json" "$S" check --config "$cfg" --rule api --key user:7 --cost 3 --json
expect_json '(j["limit"], j["remaining"], j["reset_after_ms"])' "(5, 2, 300)" "token bucket fields"

expect_rc 0 "shadow rule never denies" "$S" check --config "$cfg" --rule trial --key k --cost 3 --json
expect_json '(j["allowed"], j["shadow_denied"], j["limits"][0]["allowed"])' "(True, True, False)" "shadow_denied"
expect_rc 0 "shadow rule, allowed" "$S" check --config "$cfg" --rule trial --key k --json
expect_json '(j["allowed"], j["shadow_denied"], j["limits"][0]["algorithm"])' "(True, False, 'leaky_bucket')" "shadow allowed"

# ---- check: request matching, headers, tiers ----------------------------
expect_rc 0 "match login by method+path+ip" \
  "$S" check --config "$cfg" --method POST --path /api/auth/login --ip 203.0.113.7 --json
expect_json '(j["rule"], j["key"])' "('login', 'ip:203.0.113.7')" "matched rule and ip key"
expect_rc 0 "match api with API key header" \
  "$S" check --config "$cfg" --method GET --path /api/search --ip 203.0.113.7 --header 'X-API-Key: abc123' --json
expect_json '(j["rule"], j["key"])' "('api', 'api_key:abc123')" "identity from X-API-Key"
expect_rc 0 "match api with user header (case-insensitive)" \
  "$S" check --config "$cfg" --path /api/search --ip 203.0.113.7 --header 'x-user-id:  42' --json
expect_json 'j["key"]' "user:42" "identity from X-User-Id"
expect_rc 0 "match api falls back to ip" "$S" check --config "$cfg" --path /api/search --ip 203.0.113.7 --json
expect_json 'j["key"]' "ip:203.0.113.7" "identity falls back to ip"
expect_rc 0 "tier from --tier" "$S" check --config "$cfg" --path /t/x --ip 192.0.2.9 --tier premium --json
expect_json '(j["limit"], j.get("tier"))' "(100, 'premium')" "--tier premium"
expect_rc 0 "tier from header" "$S" check --config "$cfg" --path /t/x --ip 192.0.2.9 --header 'X-User-Tier: premium' --json
expect_json 'j["limit"]' 100 "X-User-Tier: premium"
expect_rc 0 "unknown tier falls back to free" "$S" check --config "$cfg" --path /t/x --ip 192.0.2.9 --tier gold --json
expect_json 'j["limit"]' 2 "unknown tier -> free"
expect_rc 0 "explicit rule with tier" "$S" check --config "$cfg" --rule tiered --key ip:1 --tier premium --json
expect_json 'j["limit"]' 100 "--rule with --tier"

# ---- check: a store failure is decided by on_store_error, not exit 2 ----
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
port=$(free_port)
for mode in allow deny; do
  sed "s|^store: memory://|store: memory://\non_store_error: $mode\ntimeout_ms: 50|" "$cfg" >"$tmp/ose-$mode.yaml"
done
expect_rc 0 "store down, on_store_error allow" \
  "$S" check --config "$tmp/ose-allow.yaml" --rule login --key k --store "redis://127.0.0.1:$port" --json
expect_json 'j["store_error"]' True "fail open reports store_error"
expect_rc 1 "store down, on_store_error deny" \
  "$S" check --config "$tmp/ose-deny.yaml" --rule login --key k --store "redis://127.0.0.1:$port" --json
expect_json '(j["allowed"], j["store_error"])' "(False, True)" "fail closed reports store_error"

# ---- lint ---------------------------------------------------------------
expect_rc 2 "lint without a file" "$S" lint
expect_rc 2 "lint unknown flag" "$S" lint --frob
expect_rc 0 "lint good config" "$S" lint "$cfg"
grep -q "ok" "$tmp/out" && ok || bad "lint prints ok"
expect_rc 1 "lint missing file" "$S" lint "$tmp/nope.yaml"
expect_rc 1 "lint broken yaml" "$S" lint "$tmp/broken.yaml"
grep -q "broken.yaml:[0-9]*:" "$tmp/err" && ok || bad "lint broken yaml names file:line: $(cat "$tmp/err")"
cat >"$tmp/badalgo.yaml" <<'YAML'
rules:
  - name: a
    limits:
      - { algorithm: fixed_window, limit: 5, window: 1m }
      - { algorithm: nonsense, limit: 5, window: 1m }
YAML
expect_rc 1 "lint unknown algorithm" "$S" lint "$tmp/badalgo.yaml"
grep -q "badalgo.yaml:5:" "$tmp/err" && ok || bad "lint reports line 5: $(cat "$tmp/err")"

nbad=0
# tests/rls/bad_*.yaml: envoyproxy/ratelimit descriptor files, linted as such
for f in "$SLUICE_SRC"/tests/configs/bad_*.yaml "$SLUICE_SRC"/tests/rls/bad_*.yaml; do
  [ -e "$f" ] || continue
  nbad=$((nbad + 1))
  exp=$(grep -m1 '^# *expect:' "$f" | sed 's/^# *expect: *//')
  line=${exp%%:*}
  sub=${exp#*: }
  if [ -z "$exp" ] || ! [[ "$line" =~ ^[0-9]+$ ]]; then bad "$f: no '# expect: <line>: <substring>' comment"; continue; fi
  run "$S" lint "$f"
  msg=$(cat "$tmp/err")
  if [ "$rc" -ne 1 ]; then bad "lint $f: exit $rc, want 1 ($msg)"; continue; fi
  case "$msg" in
    *"$f:$line: "*) ok ;;
    *) bad "lint $f: want '$f:$line: ...', got '$msg'" ;;
  esac
  case "$msg" in
    *"$sub"*) ok ;;
    *) bad "lint $f: want '$sub' in '$msg'" ;;
  esac
done
[ "$nbad" -gt 0 ] && ok || bad "no tests/configs/bad_*.yaml found"
for f in "$SLUICE_SRC"/tests/configs/*.yaml "$SLUICE_SRC"/examples/*.yaml "$SLUICE_SRC"/bench/*.yaml; do
  [ -e "$f" ] || continue
  case "$(basename "$f")" in bad_*) continue ;; esac
  grep -q '^rules:' "$f" || continue # not a sluice config (e.g. examples/envoy.yaml)
  expect_rc 0 "lint $f" "$S" lint "$f"
done

# upstream's own descriptor files lint as they are
for f in "$SLUICE_SRC"/tests/rls/upstream/readme/*.yaml "$SLUICE_SRC"/tests/rls/upstream/examples/*.yaml; do
  expect_rc 0 "lint descriptors $f" "$S" lint "$f"
done
expect_rc 1 "lint descriptors replaces_self" "$S" lint "$SLUICE_SRC/tests/rls/upstream/test-config/replaces_self.yaml"
grep -q "replaces_self.yaml:10: replaces should not contain name of same descriptor" "$tmp/err" && ok ||
  bad "lint names the descriptor file's line: $(cat "$tmp/err")"

# ---- replay -------------------------------------------------------------
cat >"$tmp/trace" <<'EOF2'
# time rule key cost
0 login ip:a
1 login ip:a
59999 login ip:a      # still in window 0

60000 login ip:a
60000 login ip:b 0
60100 api user:1
60100 api user:1 5
60100	api	user:1	6
60200 api user:1 4
60250 tiered@premium ip:z 100
60250 tiered@premium ip:z
60250 tiered@gold ip:y 2
60300 trial q
60300 trial q
EOF2
cat >"$tmp/trace.want" <<'EOF2'
1	1	0	60000	0	0
0	1	0	59999	59999	0
0	1	0	1	1	0
1	1	0	60000	0	0
1	1	1	0	0	0
1	5	4	100	0	0
0	5	4	100	100	0
0	5	4	100	-1	0
1	5	1	400	0	0
1	100	0	750	0	0
0	100	0	750	750	0
1	2	0	750	0	0
1	2	1	500	0	0
1	2	0	1000	0	500
EOF2
run "$S" replay --config "$cfg" <"$tmp/trace"
if [ "$rc" -eq 0 ] && diff -u "$tmp/trace.want" "$tmp/out" >"$tmp/diff"; then ok; else
  bad "replay output (exit $rc)"; cat "$tmp/diff" "$tmp/err"
fi
run "$S" replay --config "$cfg" --json <"$tmp/trace"
if [ "$rc" -eq 0 ] && [ "$(wc -l <"$tmp/out")" -eq 14 ]; then ok; else bad "replay --json: exit $rc, $(wc -l <"$tmp/out") lines"; fi
/usr/bin/python3 - "$tmp/out" "$tmp/trace.want" <<'PY' && ok || bad "replay --json matches the text output"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
want = [l.split("\t") for l in open(sys.argv[2]).read().splitlines()]
for r, w in zip(rows, want):
    got = [str(int(r["allowed"])), str(r["limit"]), str(r["remaining"]),
           str(r["reset_after_ms"]), str(r["retry_after_ms"]), str(r["delay_ms"])]
    assert got == w, (got, w)
    assert "rule" in r and "key" in r and isinstance(r["limits"], list)
assert rows[9]["tier"] == "premium" and rows[9]["rule"] == "tiered"
PY
printf '' | "$S" replay --config "$cfg" >"$tmp/out" 2>&1 && [ ! -s "$tmp/out" ] && ok || bad "empty replay"

# replay_bad DESCRIPTION LINE-NUMBER INPUT
replay_bad() {
  printf '%b' "$3" >"$tmp/in"
  run "$S" replay --config "$cfg" <"$tmp/in"
  if [ "$rc" -ne 2 ]; then bad "replay $1: exit $rc, want 2"; return; fi
  if grep -q "^line $2: " "$tmp/err"; then ok; else bad "replay $1: want 'line $2: ' in '$(cat "$tmp/err")'"; fi
}
replay_bad "bad time" 1 'abc login k\n'
replay_bad "negative time" 1 '-5 login k\n'
replay_bad "time with sign" 1 '+5 login k\n'
replay_bad "time overflow" 1 '99999999999999999999 login k\n'
# after 2^52 ms the window arithmetic would overflow (fuzz_replay found it)
# a NUL byte used to cut the line silently (fgets gives no length)
replay_bad "NUL byte" 2 '1 login k\n2 login k\0junk\n'
replay_bad "time after 2^52" 2 '4503599627370496 login k\n9223372036854775807 login k\n'
replay_bad "backwards time" 3 '5 login k\n# c\n3 login k\n'
replay_bad "unknown rule" 2 '1 login k\n2 nosuch k\n'
replay_bad "too many fields" 1 '1 login k 1 extra\n'
replay_bad "too few fields" 1 '1 login\n'
replay_bad "negative cost" 1 '1 login k -1\n'
replay_bad "cost out of range" 1 '1 login k 1000000001\n'
replay_bad "cost not a number" 1 '1 login k 1x\n'
replay_bad "empty tier" 1 '1 login@ k\n'
replay_bad "oversized key" 1 "1 login $(head -c 600 /dev/zero | tr '\0' x)\n"
replay_bad "line too long" 2 "1 login k\n1 login $(head -c 5000 /dev/zero | tr '\0' x)\n"
# lines before the bad one were decided and printed
printf '1 login k\n2 login k\nbad\n' | "$S" replay --config "$cfg" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 2 ] && [ "$(wc -l <"$tmp/out")" -eq 2 ] && grep -q '^line 3: ' "$tmp/err" && ok ||
  bad "replay prints the lines before a bad one (exit $rc)"
expect_rc 2 "replay without --config" "$S" replay
expect_rc 2 "replay unknown flag" "$S" replay --config "$cfg" --frob

# ---- bench --------------------------------------------------------------
re='^decisions_per_sec=[0-9]+ p50_us=[0-9]+\.[0-9]+ p99_us=[0-9]+\.[0-9]+ p999_us=[0-9]+\.[0-9]+ allowed=([0-9]+) denied=([0-9]+) errors=([0-9]+)$'
bench_last() {
  local last
  last=$(tail -n 1 "$tmp/out")
  if [[ "$last" =~ $re ]]; then
    b_allowed=${BASH_REMATCH[1]} b_denied=${BASH_REMATCH[2]} b_errors=${BASH_REMATCH[3]}
    ok
  else
    b_allowed=-1 b_denied=-1 b_errors=-1
    bad "bench last line: '$last'"
  fi
}
expect_rc 0 "bench api" "$S" bench --config "$cfg" --rule api --keys 100 --requests 3000
bench_last
[ $((b_allowed + b_denied)) -eq 3000 ] && [ "$b_errors" -eq 0 ] && ok || bad "bench counts: $b_allowed+$b_denied, errors $b_errors"
# one hot key under a 1-per-day limit, from two threads: exactly one admitted
# (two if the run straddles midnight UTC).
expect_rc 0 "bench hot, 2 threads" "$S" bench --config "$cfg" --rule daily --hot --threads 2 --requests 4000
bench_last
[ $((b_allowed + b_denied)) -eq 4000 ] && [ "$b_allowed" -ge 1 ] && [ "$b_allowed" -le 2 ] && ok ||
  bad "bench hot: allowed=$b_allowed denied=$b_denied"
expect_rc 0 "bench --concurrency on memory:// means threads" \
  "$S" bench --config "$cfg" --rule api --keys 10 --requests 1000 --concurrency 3
grep -q "threads=3" "$tmp/out" && ok || bad "bench --concurrency 3 uses 3 threads: $(head -1 "$tmp/out")"
expect_rc 2 "bench --keys 0" "$S" bench --config "$cfg" --rule api --keys 0
expect_rc 2 "bench unknown rule" "$S" bench --config "$cfg" --rule nosuch --requests 10
expect_rc 2 "bench without --rule" "$S" bench --config "$cfg"

# ---- a real Redis: state shared across processes, same replay output -----
. "$SLUICE_SRC/tests/integ/redis_lib.sh"
redis_lib_init
trap 'cleanup; redis_lib_cleanup' EXIT
redis_start cli
R="redis://127.0.0.1:$RL_PORT_cli"
# a generous deadline: a loaded test machine must not turn into store errors
rcfg="$tmp/redis.yaml"
sed "s|^store: memory://|store: memory://\ntimeout_ms: 2000|" "$cfg" >"$rcfg"
expect_rc 0 "redis: first login allowed" "$S" check --config "$rcfg" --rule login --key ip:198.51.100.1 --store "$R"
expect_rc 1 "redis: second login denied (state outlives the process)" \
  "$S" check --config "$rcfg" --rule login --key ip:198.51.100.1 --store "$R" --json
expect_json '(j["allowed"], j["store_error"], j["remaining"], j["retry_after_ms"] > 0)' \
  "(False, False, 0, True)" "redis denial fields"
rcli cli FLUSHALL >/dev/null
run "$S" replay --config "$rcfg" --store "$R" <"$tmp/trace"
if [ "$rc" -eq 0 ] && diff -u "$tmp/trace.want" "$tmp/out" >"$tmp/diff"; then ok; else
  bad "redis replay output (exit $rc)"; cat "$tmp/diff" "$tmp/err"
fi
# async bench path: 8 in flight on one hot key under 1 per day, 2 threads
expect_rc 0 "redis bench async" \
  "$S" bench --config "$rcfg" --rule daily --hot --store "$R" --concurrency 8 --threads 2 --requests 2000
bench_last
grep -q "(async)" "$tmp/out" && ok || bad "redis bench with --concurrency 8 runs async"
[ $((b_allowed + b_denied)) -eq 2000 ] && [ "$b_errors" -eq 0 ] && [ "$b_allowed" -ge 1 ] &&
  [ "$b_allowed" -le 2 ] && ok || bad "redis bench hot: allowed=$b_allowed denied=$b_denied errors=$b_errors"

echo "test_cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
