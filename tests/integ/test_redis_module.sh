#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The native Redis engine (build/lib/sluice_redis.so, SLUICE.DECIDE) and
# ?engine=auto|lua|module, against real redis-server processes on free
# loopback ports (all stopped on exit):
#   1. the module loads; COMMAND INFO shows the key range 1,-2,1 and
#      COMMAND GETKEYS lists exactly the keys;
#   2. every bad-argument case answers an error reply (arity, non-numbers,
#      out-of-range values, WRONGTYPE), writes nothing, and the server keeps
#      serving; a denied multi-limit decision changes no key (both engines);
#   3. the decision vectors print their .out rows on engine=lua, module and
#      auto, with the deny cache on and off;
#   4. random replay traces: identical rows on memory://, engine=lua,
#      engine=module and engine=auto, cache on and off; the module engine ran
#      no EVALSHA and the Lua engine no SLUICE.DECIDE;
#   5. mixed engines: Lua and module processes on the same keys at once
#      admit exactly the limit, for every algorithm and a multi-limit rule;
#   6. replication: after module traffic, every key's value and absolute
#      expiry on a replica with the module and on one without equal the
#      master's;
#   7. persistence: BGREWRITEAOF, more traffic, restart (without the module):
#      the same values and expiries;
#   8. an RDB saved with the module loads in a redis-server without it, and
#      engine=auto carries on there with Lua, exactly (rows as memory://);
#   9. engine=auto: absent -> Lua, present -> module (commandstats, /metrics
#      and the log of sluiced); engine=module without the module is a store
#      error (on_store_error), with a clear message;
#  10. Sentinel: a failover to a replica without the module goes on with Lua,
#      and no decision fails for the engine ("unknown command" never reaches
#      a caller);
#  11. redis+cluster:// with the module on every node: vectors and traces,
#      MOVED and CROSSSLOT for SLUICE.DECIDE;
#  12. the ASan+UBSan build of the module (LD_PRELOAD of the sanitizer
#      runtimes into redis-server) runs cases 2 and 3 with no report and no
#      leak; skipped, with the reason printed, where that cannot run.
set -uo pipefail
: "${SLUICE_BIN:?}" "${SLUICE_SRC:?}"
. "$SLUICE_SRC/tests/integ/redis_lib.sh"
redis_lib_init
S="$SLUICE_BIN/sluice"
D="$SLUICE_BIN/sluiced"
T="$SLUICE_BIN/store_test_redis"
M="$SLUICE_BIN/../lib/sluice_redis.so"
for b in "$S" "$T" "$M"; do [ -e "$b" ] || { echo "FAIL: $b missing"; exit 1; }; done
M=$(cd "$(dirname "$M")" && pwd)/$(basename "$M")

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
check() { # description, then a command that must succeed
  local d=$1; shift
  if "$@"; then ok "$d"; else bad "$d"; fi
}
field() { sed -n "s/.*\b$1=\([0-9-]*\).*/\1/p" <<<"$2"; }
wait_for() { # seconds, then a command
  local n=$(($1 * 50)) i; shift
  for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.02; done
  return 1
}
calls() { # port command-name: calls so far (commandstats)
  local n
  n=$(redis-cli -p "$1" INFO commandstats | tr -d '\r' | sed -n "s/^cmdstat_$2:calls=\([0-9]*\).*/\1/p")
  echo "${n:-0}"
}
sumcalls() { # command-name ports...
  local c=$1 p sum=0; shift
  for p in "$@"; do sum=$((sum + $(calls "$p" "$c"))); done
  echo "$sum"
}
resetstat() { local p; for p in "$@"; do redis-cli -p "$p" CONFIG RESETSTAT >/dev/null; done; }

redis_start mod --loadmodule "$M"
redis_start plain
MP=$RL_PORT_mod
PP=$RL_PORT_plain
MURL="redis://127.0.0.1:$MP"
PURL="redis://127.0.0.1:$PP"

# ---- 1 ------------------------------------------------------------------
info=$(rcli mod COMMAND INFO sluice.decide | tr '\n' ' ')
check "COMMAND INFO sluice.decide: write, denyoom, keys 1,-2,1 ($info)" \
  grep -Eq '^sluice\.decide -1 write denyoom module fast 1 -2 1 ' <<<"$info"
keys=$(rcli mod COMMAND GETKEYS sluice.decide 'sluice:{a}:0' 'sluice:{a}:1' '-1 1 0 3 5 1000 0 0 9 1000 0' | tr '\n' ' ')
check "COMMAND GETKEYS lists exactly the two keys ($keys)" test "$keys" = 'sluice:{a}:0 sluice:{a}:1 '

# ---- 2 ------------------------------------------------------------------
badargs() { # name port: every case answers an error and writes nothing
  local label=$1 p=$2 n=0 nbad=0 out c
  redis-cli -p "$p" FLUSHALL >/dev/null
  redis-cli -p "$p" HSET 'sluice:{w}:0' f v >/dev/null
  redis-cli -p "$p" SADD 'sluice:{w}:1' m >/dev/null
  redis-cli -p "$p" ZADD 'sluice:{w}:2' 1 m >/dev/null
  local K='sluice:{b}:0' K1='sluice:{b}:1'
  # the form: SLUICE.DECIDE key1 .. keyN "now cost slack" + "alg L W B" per key
  local G='3 5 1000 0'
  local -a cases=(
    "SLUICE.DECIDE"
    "SLUICE.DECIDE $K"
    "SLUICE.DECIDE '-1 1 0 $G'"
    "SLUICE.DECIDE $K '-1 1 0 $G' extra"
    "SLUICE.DECIDE $K $K1 '-1 1 0 $G'"
    "SLUICE.DECIDE $K '-1 1 0 $G $G'"
    "SLUICE.DECIDE $K '-1 1 $G'"
    "SLUICE.DECIDE $K ''"
    "SLUICE.DECIDE $K 'x 1 0 $G'"
    "SLUICE.DECIDE $K '-1 1.5 0 $G'"
    "SLUICE.DECIDE $K '-1 1 abc $G'"
    "SLUICE.DECIDE $K '-1  1 0 $G'"
    "SLUICE.DECIDE $K '-1 1 0 $G '"
    "SLUICE.DECIDE $K ' -1 1 0 $G'"
    "SLUICE.DECIDE $K '-1 1 0 tb 5 1000 0'"
    "SLUICE.DECIDE $K '-1 1 0 3 5 1000'"
    "SLUICE.DECIDE $K '-1 1 0 3 5 1000 0 1'"
    "SLUICE.DECIDE $K '-1 1 0 3 5 1e3 0'"
    "SLUICE.DECIDE $K '-1 1 0 3 5 1000 -'"
    "SLUICE.DECIDE $K '-1 +1 0 $G'"
    "SLUICE.DECIDE $K '-1 --1 0 $G'"
    "SLUICE.DECIDE $K '9999999999999999999 1 0 $G'"
    "SLUICE.DECIDE $K '-1 1 0 3 5 99999999999999999999999 0'"
    "SLUICE.DECIDE $K '-2 1 0 $G'"
    "SLUICE.DECIDE $K '-1 -1 0 $G'"
    "SLUICE.DECIDE $K '-1 1000000001 0 $G'"
    "SLUICE.DECIDE $K '-1 1 -1 $G'"
    "SLUICE.DECIDE $K '-1 1 99999999999999 $G'"
    "SLUICE.DECIDE $K '-1 1 0 5 5 1000 0'"
    "SLUICE.DECIDE $K '-1 1 0 -1 5 1000 0'"
    "SLUICE.DECIDE $K '-1 1 0 3 0 1000 0'"
    "SLUICE.DECIDE $K '-1 1 0 3 1000000001 1000 0'"
    "SLUICE.DECIDE $K '-1 1 0 3 5 0 0'"
    "SLUICE.DECIDE $K '-1 1 0 3 5 31622400001 0'"
    "SLUICE.DECIDE $K '-1 1 0 3 5 1000 -1'"
    "SLUICE.DECIDE $K '-1 1 0 3 5 1000 1000000001'"
    "SLUICE.DECIDE $K '-1 1 0 0 5 1000 2'"
    "SLUICE.DECIDE $K '-1 1 0 1 10001 1000 0'"
    "SLUICE.DECIDE $K '-1 1 0 3 1000000 31622400000 0'"
    "SLUICE.DECIDE sluice:{w}:0 '-1 1 0 $G'"
    "SLUICE.DECIDE sluice:{w}:1 '-1 1 0 1 5 1000 0'"
    "SLUICE.DECIDE sluice:{w}:2 '-1 1 0 0 5 1000 0'"
    "SLUICE.DECIDE $K sluice:{w}:0 '-1 1 0 $G 0 5 1000 0'"
    "SLUICE.DECIDE $K sluice:{w}:1 '-1 1 0 1 5 1000 0 2 5 1000 0'"
  )
  local nine="SLUICE.DECIDE" nums='-1 1 0'
  for i in 0 1 2 3 4 5 6 7 8; do nine="$nine sluice:{b}:$i"; nums="$nums $G"; done
  nine="$nine '$nums'"
  cases+=("$nine")
  for c in "${cases[@]}"; do
    n=$((n + 1))
    out=$(eval "redis-cli -p $p $c" 2>&1 | head -1)
    case $out in
      ERR* | WRONGTYPE*) ;;
      *) nbad=$((nbad + 1)); echo "  # not an error reply: $c -> $out" ;;
    esac
  done
  local written
  written=$(redis-cli -p "$p" EXISTS "$K" "$K1" 'sluice:{b}:2')
  check "$label: $n bad-argument cases each answer an error reply ($nbad did not)" test "$nbad" = 0
  check "$label: nothing written by them (EXISTS $written)" test "$written" = 0
  check "$label: the foreign-type keys are untouched" \
    test "$(redis-cli -p "$p" TYPE 'sluice:{w}:0') $(redis-cli -p "$p" TYPE 'sluice:{w}:1')" = "hash set"
  check "$label: the server still serves (PING, a good decision)" \
    bash -c '[ "$(redis-cli -p "$0" PING)" = PONG ] &&
             [ "$(redis-cli -p "$0" SLUICE.DECIDE "sluice:{g}:0" "-1 1 0 3 5 1000 0" | cut -d" " -f2)" = 1 ]' "$p"
}
badargs "module" "$MP"

# A denied multi-limit decision consumes nothing, on both engines: limit 2
# (fixed window of 1) is used up, so the token bucket of limit 1 must keep
# its bytes exactly.
SHA=$(rcli mod SCRIPT LOAD "$(cat "$SLUICE_SRC/src/store/redis/sluice.lua")")
denied_consumes_nothing() { # engine
  local K0='sluice:{dn}:0' K1='sluice:{dn}:1' before after r
  rcli mod DEL "$K0" "$K1" >/dev/null
  rcli mod SLUICE.DECIDE "$K0" "$K1" '-1 1 0 3 5 60000 0 0 1 60000 0' >/dev/null
  before=$(rcli mod --no-raw GET "$K0")$(rcli mod PEXPIRETIME "$K0")
  sleep 0.01
  if [ "$1" = module ]; then
    r=$(rcli mod SLUICE.DECIDE "$K0" "$K1" '-1 1 0 3 5 60000 0 0 1 60000 0' | tr '\n' ' ')
  else
    r=$(rcli mod EVALSHA "$SHA" 2 "$K0" "$K1" -1 1 3 5 60000 0 0 1 60000 0 0 | tr '\n' ' ')
  fi
  after=$(rcli mod --no-raw GET "$K0")$(rcli mod PEXPIRETIME "$K0")
  [ "$(cut -d' ' -f2,8 <<<"$r")" = "1 0" ] && [ "$before" = "$after" ]
}
check "module: a denied multi-limit decision leaves the other limit's key as it was" denied_consumes_nothing module
check "lua: the same, on the same keys" denied_consumes_nothing lua

# ---- 3 ------------------------------------------------------------------
for e in lua module auto; do
  resetstat "$MP"
  vectors "engine=$e" "$MURL/1?engine=$e" rcli mod -n 1 FLUSHDB
  case $e in
    lua) check "engine=lua ran no SLUICE.DECIDE" test "$(calls "$MP" sluice.decide)" = 0 ;;
    module) check "engine=module ran no EVALSHA ($(calls "$MP" sluice.decide) SLUICE.DECIDE)" \
      test "$(calls "$MP" evalsha)" = 0 ;;
  esac
done

# ---- 4 ------------------------------------------------------------------
cp "$SLUICE_SRC/tests/configs/good_replay_all.yaml" "$RL_DIR/replay.yaml"
gen_trace() { # seed base_ms count
  /usr/bin/python3 - "$1" "$2" "$3" <<'P'
import random, sys
r = random.Random(int(sys.argv[1])); t = int(sys.argv[2])
rules = ["fw", "sl", "sw", "tb", "lb", "multi", "multi2"]
for _ in range(int(sys.argv[3])):
    t += r.choice([0, 1, 2, 5, 17, 120, 400, 1500])
    rule, key, cost = r.choice(rules), "k%d" % r.randrange(3), r.choice([1, 1, 1, 1, 2, 3, 0, 9])
    for _ in range(r.choice([1, 1, 3, 8])):
        print(t, rule, key, cost)
        t += r.choice([0, 0, 1, 3])
P
}
seed=${SLUICE_SEED:-$RANDOM}
echo "# trace seed $seed (SLUICE_SEED=$seed repeats it)"
traces() { # label "url url ..." flush_cmd...
  local label=$1 urls=$2 base u mode nd=0; shift 2
  for base in 0 1700000000000; do
    gen_trace "$seed" "$base" 600 >"$RL_DIR/trace.in"
    "$S" replay --config "$RL_DIR/replay.yaml" --store memory:// <"$RL_DIR/trace.in" >"$RL_DIR/mem.out" 2>&1
    for u in $urls; do
      for mode in on off; do
        "$@" >/dev/null
        "$S" replay --config "$RL_DIR/replay.yaml" --store "$u&deny_cache=$mode" \
          <"$RL_DIR/trace.in" >"$RL_DIR/r.out" 2>&1
        if ! [ -s "$RL_DIR/mem.out" ] || ! cmp -s "$RL_DIR/mem.out" "$RL_DIR/r.out"; then
          nd=$((nd + 1))
          echo "  # $u deny_cache=$mode from t=$base differs from memory://"
          diff "$RL_DIR/mem.out" "$RL_DIR/r.out" | head -6 | sed 's/^/    /'
        fi
      done
    done
  done
  check "$label: random replay rows (2 x $(wc -l <"$RL_DIR/trace.in") decisions) identical to memory:// on every engine, cache on and off ($nd differ)" \
    test "$nd" = 0
}
resetstat "$MP"
traces "redis://" "$MURL/2?engine=lua $MURL/2?engine=module $MURL/2?engine=auto" rcli mod -n 2 FLUSHDB
check "the traces ran on both engines ($(calls "$MP" evalsha) EVALSHA, $(calls "$MP" sluice.decide) SLUICE.DECIDE)" \
  test "$(calls "$MP" evalsha)" -gt 100 -a "$(calls "$MP" sluice.decide)" -gt 100

# ---- 5 ------------------------------------------------------------------
W=31622400000
mixed() { # name spec expected_allowed
  local name=$1 spec=$2 want=$3 key="mixed:$1:$RANDOM" i sum=0 errs=0 pids=() e
  for i in 1 2 3 4 5 6; do
    if [ $((i % 2)) = 0 ]; then e=lua; else e=module; fi
    "$T" hammer "$MURL/3?engine=$e&deny_cache=$( [ "$i" -le 2 ] && echo off || echo on)" "$spec" 1200 \
      "$( [ "$i" -le 4 ] && echo 32 || echo 0)" "$key" >"$RL_DIR/h$i" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i"; done
  for i in 1 2 3 4 5 6; do
    sum=$((sum + $(field allowed "$(cat "$RL_DIR/h$i")")))
    errs=$((errs + $(field errors "$(cat "$RL_DIR/h$i")")))
  done
  if [ "$sum" = "$want" ] && [ "$errs" = 0 ]; then
    ok "mixed engines, $name: 3 Lua and 3 module processes, 7200 decisions on one key, admitted exactly $want"
  else
    bad "mixed engines, $name: admitted $sum (want $want), errors $errs"
    cat "$RL_DIR"/h[1-6] | sed 's/^/    /'
  fi
}
SLUICE_TIMEOUT_MS=5000 mixed fixed_window "0:1000:$W:0" 1000
SLUICE_TIMEOUT_MS=5000 mixed sliding_log "1:800:$W:0" 800
SLUICE_TIMEOUT_MS=5000 mixed sliding_window "2:1000:$W:0" 1000
SLUICE_TIMEOUT_MS=5000 mixed token_bucket "3:700:$W:700" 700
SLUICE_TIMEOUT_MS=5000 mixed leaky_bucket "4:600:$W:600" 600
SLUICE_TIMEOUT_MS=5000 mixed multi_limit "0:300:$W:0,1:1000:$W:0,3:5000:$W:5000" 300

# ---- 6 ------------------------------------------------------------------
# every key of db 0 as "key type value pexpiretime", sorted
snapshot() { # port
  local p=$1 k t v
  redis-cli -p "$p" --scan | sort | while IFS= read -r k; do
    t=$(redis-cli -p "$p" TYPE "$k")
    case $t in
      string) v=$(redis-cli -p "$p" --no-raw GET "$k") ;;
      list) v=$(redis-cli -p "$p" --no-raw LRANGE "$k" 0 -1 | tr '\n' ' ') ;;
      *) v=? ;;
    esac
    printf '%s %s %s %s\n' "$k" "$t" "$v" "$(redis-cli -p "$p" PEXPIRETIME "$k")"
  done
}
# windows are aligned to multiples of W since the epoch: 366-day fixed and
# sliding windows never end (and so never expire their keys) while the
# snapshots are taken; a 1h window would at the top of every hour
cat >"$RL_DIR/traffic.yaml" <<'Y'
timeout_ms: 5000
on_store_error: deny
rules:
  - name: all
    match: { path: /all }
    limits:
      - { algorithm: token_bucket, limit: 50, window: 1h, burst: 60 }
      - { algorithm: fixed_window, limit: 40, window: 366d }
      - { algorithm: sliding_window, limit: 45, window: 366d }
      - { algorithm: sliding_log, limit: 30, window: 1h }
      - { algorithm: leaky_bucket, limit: 55, window: 1h, burst: 35 }
  - name: tb
    match: { path: /tb }
    limits: [ { algorithm: token_bucket, limit: 20, window: 1h } ]
Y
traffic() { # url
  "$S" bench --config "$RL_DIR/traffic.yaml" --rule all --store "$1" --keys 40 --requests 3000 \
    --concurrency 16 2>/dev/null | tail -1
  "$S" bench --config "$RL_DIR/traffic.yaml" --rule tb --store "$1" --keys 100 --requests 3000 \
    --concurrency 16 2>/dev/null | tail -1
}
redis_start rep1 --loadmodule "$M" --replicaof 127.0.0.1 "$MP"
redis_start rep2 --replicaof 127.0.0.1 "$MP"
rcli mod FLUSHALL >/dev/null
in_sync() { # replica name
  local mo ro
  mo=$(rcli mod INFO replication | tr -d '\r' | sed -n 's/^master_repl_offset://p')
  ro=$(rcli "$1" INFO replication | tr -d '\r' | sed -n 's/^slave_repl_offset://p')
  rcli "$1" INFO replication | grep -q 'master_link_status:up' && [ -n "$ro" ] && [ "$mo" = "$ro" ]
}
check "replica with the module in sync" wait_for 30 in_sync rep1
check "replica without the module in sync" wait_for 30 in_sync rep2
out=$(traffic "$MURL?engine=module")
echo "# traffic: $(tr '\n' ' ' <<<"$out")"
check "replica traffic: no errors" test "$(grep -c 'errors=0' <<<"$out")" = 2
both_in_sync() { in_sync rep1 && in_sync rep2; }
check "the replicas caught up with the master" wait_for 30 both_in_sync
snapshot "$MP" >"$RL_DIR/snap.m"
snapshot "$RL_PORT_rep1" >"$RL_DIR/snap.r1"
snapshot "$RL_PORT_rep2" >"$RL_DIR/snap.r2"
nk=$(wc -l <"$RL_DIR/snap.m")
check "replication: $nk keys, values and absolute expiries equal on the replica with the module" \
  bash -c "[ $nk -gt 100 ] && cmp -s '$RL_DIR/snap.m' '$RL_DIR/snap.r1'"
check "replication: the same on the replica without the module" cmp -s "$RL_DIR/snap.m" "$RL_DIR/snap.r2"
for r in r1 r2; do
  cmp -s "$RL_DIR/snap.m" "$RL_DIR/snap.$r" || diff "$RL_DIR/snap.m" "$RL_DIR/snap.$r" | head -6 | sed "s/^/    $r: /"
done
check "replication: every key has an expiry" bash -c "! awk '\$NF < 0' '$RL_DIR/snap.m' | grep -q ."
redis_kill rep1
redis_kill rep2

# ---- 7 ------------------------------------------------------------------
redis_start aof --loadmodule "$M" --appendonly yes --appendfsync always
AURL="redis://127.0.0.1:$RL_PORT_aof"
traffic "$AURL?engine=module" >/dev/null
rcli aof BGREWRITEAOF >/dev/null
rewritten() { rcli aof INFO persistence | tr -d '\r' | grep -q '^aof_rewrite_in_progress:0' &&
  rcli aof INFO persistence | tr -d '\r' | grep -q '^aof_rewrite_scheduled:0' &&
  rcli aof INFO persistence | tr -d '\r' | grep -q '^aof_last_bgrewrite_status:ok'; }
check "BGREWRITEAOF done" wait_for 30 rewritten
traffic "$AURL?engine=module" >/dev/null # on top of the rewritten base: incremental AOF
snapshot "$RL_PORT_aof" >"$RL_DIR/snap.aof1"
rcli aof SHUTDOWN >/dev/null 2>&1
wait "$RL_PID_aof" 2>/dev/null
# restart from the same directory, without the module
redis_start aof --appendonly yes
snapshot "$RL_PORT_aof" >"$RL_DIR/snap.aof2"
check "BGREWRITEAOF + more traffic + restart without the module: the same $(wc -l <"$RL_DIR/snap.aof1") keys, values and expiries" \
  bash -c "[ \$(wc -l <'$RL_DIR/snap.aof1') -gt 100 ] && cmp -s '$RL_DIR/snap.aof1' '$RL_DIR/snap.aof2'"
redis_kill aof

# ---- 8 ------------------------------------------------------------------
gen_trace "$seed" 1700000000000 600 >"$RL_DIR/rdb.in"
head -n 300 "$RL_DIR/rdb.in" >"$RL_DIR/rdb1.in"
tail -n +301 "$RL_DIR/rdb.in" >"$RL_DIR/rdb2.in"
"$S" replay --config "$RL_DIR/replay.yaml" --store memory:// <"$RL_DIR/rdb.in" >"$RL_DIR/rdb.mem" 2>&1
redis_start rdbm --loadmodule "$M" --dbfilename dump.rdb
"$S" replay --config "$RL_DIR/replay.yaml" --store "redis://127.0.0.1:$RL_PORT_rdbm?engine=module" \
  <"$RL_DIR/rdb1.in" >"$RL_DIR/rdb.out" 2>&1
rcli rdbm SAVE >/dev/null
mkdir -p "$RL_DIR/rdbp"
cp "$RL_DIR/rdbm/dump.rdb" "$RL_DIR/rdbp/dump.rdb"
redis_kill rdbm
redis_start rdbp --dir "$RL_DIR/rdbp" --dbfilename dump.rdb
check "an RDB saved with the module loads in a redis-server without it ($(rcli rdbp DBSIZE) keys)" \
  test "$(rcli rdbp DBSIZE)" -gt 0
"$S" replay --config "$RL_DIR/replay.yaml" --store "redis://127.0.0.1:$RL_PORT_rdbp?engine=auto" \
  <"$RL_DIR/rdb2.in" >>"$RL_DIR/rdb.out" 2>&1
check "engine=auto there carries on with Lua ($(calls "$RL_PORT_rdbp" evalsha) EVALSHA), rows exactly as memory://" \
  bash -c "[ $(calls "$RL_PORT_rdbp" evalsha) -gt 0 ] && cmp -s '$RL_DIR/rdb.mem' '$RL_DIR/rdb.out'"
redis_kill rdbp

# ---- 9 ------------------------------------------------------------------
resetstat "$MP" "$PP"
"$S" bench --config "$RL_DIR/traffic.yaml" --rule tb --store "$PURL?engine=auto" --requests 2000 \
  --concurrency 8 >/dev/null 2>&1
"$S" bench --config "$RL_DIR/traffic.yaml" --rule tb --store "$MURL?engine=auto" --requests 2000 \
  --concurrency 8 >/dev/null 2>&1
check "auto, module absent: Lua ($(calls "$PP" evalsha) EVALSHA)" test "$(calls "$PP" evalsha)" -ge 2000
check "auto, module present: the module ($(calls "$MP" sluice.decide) SLUICE.DECIDE, $(calls "$MP" evalsha) EVALSHA before detection)" \
  test "$(calls "$MP" sluice.decide)" -ge 1900
out=$("$S" check --json --config "$RL_DIR/traffic.yaml" --rule tb --key x --store "$PURL?engine=module" 2>&1)
check "engine=module without the module: a store error (on_store_error deny): $out" \
  grep -q '"store_error":true' <<<"$out"
out=$("$S" check --config "$RL_DIR/traffic.yaml" --rule tb --key x --store "$PURL?engine=bogus" 2>&1)
check "engine=bogus refused: $out" grep -q "engine must be auto, lua or module" <<<"$out"
if [ -x "$D" ]; then
  hp=$(free_port)
  cfg="$RL_DIR/d.yaml"
  { grep -v '^on_store_error' "$RL_DIR/traffic.yaml"; echo 'on_store_error: deny'; } >"$cfg"
  for pair in "module:$MURL" "lua:$PURL"; do
    want=${pair%%:*}
    url=${pair#*:}
    "$D" --config "$cfg" --store "$url?engine=auto" --listen "127.0.0.1:$hp" >"$RL_DIR/d.log" 2>&1 &
    dp=$!
    up() { curl -s -o /dev/null "http://127.0.0.1:$hp/metrics"; }
    wait_for 10 up
    for i in 1 2 3 4 5; do
      curl -s -o /dev/null -H "X-Original-URI: /tb" -H "X-Original-Method: GET" \
        "http://127.0.0.1:$hp/v1/authorize"
    done
    sleep 0.3
    m=$(curl -s "http://127.0.0.1:$hp/metrics" | grep '^sluice_store_engine{')
    check "sluiced, auto on a server $( [ "$want" = module ] && echo with || echo without) the module: /metrics sluice_store_engine{engine=\"$want\"} 1" \
      grep -q "engine=\"$want\"} 1" <<<"$m"
    check "sluiced logs the engine ($(grep -m1 store_engine "$RL_DIR/d.log" | cut -c1-120))" \
      grep -q "event=store_engine .*engine=$want" "$RL_DIR/d.log"
    kill "$dp"; wait "$dp" 2>/dev/null
  done
fi

# ---- 10 -----------------------------------------------------------------
if command -v redis-sentinel >/dev/null; then
  redis_start sm --loadmodule "$M"
  redis_start sr --replicaof 127.0.0.1 "$RL_PORT_sm"
  link_up() { rcli sr INFO replication | grep -q 'master_link_status:up'; }
  wait_for 20 link_up
  for s in s1 s2 s3; do
    sentinel_start "$s" "sentinel monitor mymaster 127.0.0.1 $RL_PORT_sm 2" \
      "sentinel down-after-milliseconds mymaster 800" \
      "sentinel failover-timeout mymaster 4000" \
      "sentinel parallel-syncs mymaster 1"
  done
  knows_all() {
    local s
    for s in s1 s2 s3; do
      [ "$(rcli "$s" SENTINEL sentinels mymaster 2>/dev/null | grep -c '^name$')" -ge 2 ] &&
        rcli "$s" SENTINEL replicas mymaster 2>/dev/null | grep -q "^$RL_PORT_sr\$" || return 1
    done
  }
  check "sentinels see each other and the replica (without the module)" wait_for 30 knows_all
  SURL="redis+sentinel://127.0.0.1:$RL_PORT_s1,127.0.0.1:$RL_PORT_s2/mymaster?engine=auto"
  export SLUICE_HAMMER_STOP_FILE="$RL_DIR/stop"
  SLUICE_HAMMER_RATE=3000 SLUICE_TIMEOUT_MS=1000 "$T" hammer "$SURL" "0:1000000000:$W:0" 0 32 sfo 120000 >"$RL_DIR/sa" 2>&1 &
  ha=$!
  SLUICE_HAMMER_RATE=500 SLUICE_TIMEOUT_MS=1000 "$T" hammer "$SURL" "0:1000000000:$W:0" 0 0 sfo 120000 >"$RL_DIR/ss" 2>&1 &
  hs=$!
  sleep 1.5
  before=$(calls "$RL_PORT_sm" sluice.decide)
  promoted() { rcli s1 SENTINEL get-master-addr-by-name mymaster | tail -1 | grep -qx "$RL_PORT_sr"; }
  failover() { # a manual failover: the old master stays up and becomes a replica
    local i
    for ((i = 0; i < 30; i++)); do
      rcli s1 SENTINEL FAILOVER mymaster 2>/dev/null | grep -q '^OK' && wait_for 15 promoted && return 0
      promoted && return 0
      sleep 1
    done
    return 1
  }
  check "SENTINEL FAILOVER to the replica without the module" failover
  sleep 4
  touch "$SLUICE_HAMMER_STOP_FILE"
  wait "$ha"; wait "$hs"
  a_out=$(cat "$RL_DIR/sa"); s_out=$(cat "$RL_DIR/ss")
  echo "# async: $a_out"; echo "# sync:  $s_out"
  # error replies to unknown commands are counted in errorstats but under no
  # command's failed_calls/rejected_calls (Sentinel's own failing CONFIG
  # REWRITE, for instance, is): their difference is the unknown commands
  errs=$(( $(redis-cli -p "$RL_PORT_sr" INFO errorstats | tr -d '\r' |
             awk -F'count=' '/^errorstat_/ { n += $2 } END { print n + 0 }') -
           $(redis-cli -p "$RL_PORT_sr" INFO commandstats | tr -d '\r' |
             awk -F'[=,]' '/^cmdstat_/ { for (i = 1; i < NF; i++) if ($i == "rejected_calls" || $i == "failed_calls") n += $(i + 1) } END { print n + 0 }') ))
  check "before the failover the module decided ($before SLUICE.DECIDE on the old master)" test "$before" -gt 100
  check "after it Lua decides on the new master ($(calls "$RL_PORT_sr" evalsha) EVALSHA), $errs 'unknown command' replies there" \
    test "$(calls "$RL_PORT_sr" evalsha)" -gt 500 -a "$errs" = 0
  check "no decision failed for the engine: async and sync go on after the failover (tail_ok)" \
    test "$(field tail_ok "$a_out")" -gt 1000 -a "$(field tail_ok "$s_out")" -gt 100
  unset SLUICE_HAMMER_STOP_FILE
fi

# ---- 11 -----------------------------------------------------------------
. "$SLUICE_SRC/tests/integ/cluster_lib.sh"
trap 'cluster_cleanup; redis_lib_cleanup' EXIT
export CL_SERVER_ARGS="--loadmodule $M --enable-module-command local"
if cluster_start 3; then
  CURL=$(cluster_url)
  masters=$(cluster_masters | paste -sd' ' -)
  flush_cluster() { local p; for p in $masters; do redis-cli -p "$p" FLUSHALL >/dev/null; done; }
  resetstat $masters
  vectors "redis+cluster:// engine=module" "$CURL?engine=module" flush_cluster
  traces "redis+cluster://" "$CURL?engine=module $CURL?engine=auto" flush_cluster
  check "cluster: the module decided on every master, no EVALSHA for engine=module+auto after detection" \
    bash -c "for p in $masters; do [ \$(redis-cli -p \$p INFO commandstats | grep -c 'cmdstat_sluice.decide') = 1 ] || exit 1; done"
  # routing: a key of another node's slot gets MOVED; two slots CROSSSLOT
  first=$(cut -d' ' -f1 <<<"$masters")
  moved=0
  for i in $(seq 1 20); do
    r=$(redis-cli -p "$first" SLUICE.DECIDE "sluice:{mv$i}:0" '-1 1 0 3 5 1000 0' | head -1)
    case $r in MOVED*) moved=$((moved + 1)) ;; esac
  done
  check "cluster: SLUICE.DECIDE on a foreign slot answers MOVED ($moved of 20 keys)" test "$moved" -gt 0
  r=$(redis-cli -p "$first" SLUICE.DECIDE 'sluice:{x}:0' 'sluice:{y}:0' '-1 1 0 3 5 1000 0 3 5 1000 0' | head -1)
  check "cluster: keys of two slots: $r" grep -q '^CROSSSLOT' <<<"$r"
  # engine=auto uses the module only where every master in use has it: one
  # master without it (MODULE UNLOAD) sends every master's decisions to Lua,
  # on the sync and the async path; before, each node chose for itself, and
  # the two masters with the module went on with it
  last=$(awk '{print $NF}' <<<"$masters")
  unload=$(redis-cli -p "$last" MODULE UNLOAD sluice)
  check "cluster: MODULE UNLOAD on one master ($unload)" test "$unload" = OK
  for mode in "--concurrency 32" ""; do
    resetstat $masters
    # deny cache off: every decision reaches a master, so the counts add up
    "$S" bench --config "$RL_DIR/traffic.yaml" --rule tb --store "$CURL?engine=auto&deny_cache=off" --keys 300 \
      --requests 6000 $mode >/dev/null 2>&1
    md=$(sumcalls sluice.decide $masters)
    ev=$(sumcalls evalsha $masters)
    lua_everywhere=1
    for p in $masters; do [ "$(calls "$p" evalsha)" -gt 0 ] || lua_everywhere=0; done
    # only decisions sent before the last master's detection may use the module
    check "cluster, one master without the module, auto ${mode:-sync}: Lua on every master ($ev EVALSHA, $md SLUICE.DECIDE)" \
      test "$lua_everywhere" = 1 -a "$md" -le 200 -a "$ev" -ge 5800
  done
else
  bad "the cluster did not start"
fi
unset CL_SERVER_ARGS

# ---- 12 -----------------------------------------------------------------
asan_lib=$(gcc -print-file-name=libasan.so 2>/dev/null)
ubsan_lib=$(gcc -print-file-name=libubsan.so 2>/dev/null)
AM=${SLUICE_ASAN_MODULE:-}
if [ -z "$AM" ] && [ -f "$asan_lib" ]; then
  # build just the module (and the core objects it compiles) with ASan+UBSan
  if cmake -S "$SLUICE_SRC" -B "$RL_DIR/asan" -DSLUICE_ASAN=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null 2>&1 &&
    cmake --build "$RL_DIR/asan" --target sluice_redis -j 2 >"$RL_DIR/asan.log" 2>&1; then
    AM="$RL_DIR/asan/lib/sluice_redis.so"
  fi
fi
if [ -z "$AM" ] || [ ! -f "$asan_lib" ]; then
  echo "ok - # SKIP ASan module: no libasan ($asan_lib) or the ASan build failed"
else
  mkdir -p "$RL_DIR/asanlog"
  export ASAN_OPTIONS="detect_leaks=1:log_path=$RL_DIR/asanlog/asan:abort_on_error=0"
  export UBSAN_OPTIONS="print_stacktrace=1:log_path=$RL_DIR/asanlog/ubsan"
  # the sanitizer runtimes are preloaded into redis-server only (not redis-cli)
  ap=$(free_port)
  mkdir -p "$RL_DIR/asan-srv"
  LD_PRELOAD="$asan_lib $ubsan_lib" redis-server --port "$ap" --bind 127.0.0.1 --save '' \
    --appendonly no --dir "$RL_DIR/asan-srv" --logfile "$RL_DIR/asan-srv/log" --loadmodule "$AM" &
  RL_PID_asan=$!
  RL_PIDS+=("$RL_PID_asan")
  RL_PORT_asan=$ap
  if wait_ping "$ap" 20 >/dev/null; then
    badargs "ASan module" "$RL_PORT_asan"
    vectors "ASan module" "redis://127.0.0.1:$RL_PORT_asan/1?engine=module" rcli asan -n 1 FLUSHDB
    traffic "redis://127.0.0.1:$RL_PORT_asan?engine=module" >/dev/null
    rcli asan SHUTDOWN NOSAVE >/dev/null 2>&1
    wait "$RL_PID_asan" 2>/dev/null
    reports=$(cat "$RL_DIR"/asanlog/* 2>/dev/null | grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error' | grep -c .)
    if [ "$reports" != 0 ]; then cat "$RL_DIR"/asanlog/* | head -40 | sed 's/^/    /'; fi
    check "ASan module: no ASan, LSan or UBSan report after bad arguments, vectors and traffic" test "$reports" = 0
  else
    echo "ok - # SKIP ASan module: redis-server would not start with the sanitizer runtimes preloaded"
  fi
  unset ASAN_OPTIONS UBSAN_OPTIONS
fi

echo "test_redis_module: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
