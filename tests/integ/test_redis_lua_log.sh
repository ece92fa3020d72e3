#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Long sliding logs in sluice.lua: the script reads a log's header and first
# 63 entries with one LRANGE and only goes further (LLEN, LINDEX -1, more
# LRANGEs of 64) for longer logs, which the vectors and the random traces of
# test_redis.c (logs of at most 60 entries) never reach.  Replays traces
# that build logs of hundreds of entries (one request per millisecond), drop
# more than 64 entries at once (time jumps), search far for retry_after
# (large costs), at small and epoch-scale times and with a second limit,
# through `sluice replay` on memory:// (src/core) and on a redis-server
# started here, and requires identical output.
set -uo pipefail

: "${SLUICE_BIN:?set SLUICE_BIN to the directory holding sluice}"
: "${SLUICE_SRC:?set SLUICE_SRC to the source tree}"
S="$SLUICE_BIN/sluice"
[ -x "$S" ] || { echo "FAIL: $S is not executable"; exit 1; }

. "$SLUICE_SRC/tests/integ/redis_lib.sh"
redis_lib_init
redis_start log
URL="redis://127.0.0.1:$RL_PORT_log?timeout_ms=5000" # no fail-open on a busy machine

cat >"$RL_DIR/log.yaml" <<'EOF'
store: memory://
rules:
  - name: log300
    match: { path: /log300 }
    key: ip
    limits:
      - { algorithm: sliding_log, limit: 300, window: 1s }
  - name: log130
    match: { path: /log130 }
    key: ip
    limits:
      - { algorithm: sliding_log, limit: 130, window: 150ms }
  - name: log65
    match: { path: /log65 }
    key: ip
    limits:
      - { algorithm: sliding_log, limit: 65, window: 400ms }
  - name: pair
    match: { path: /pair }
    key: ip
    limits:
      - { algorithm: sliding_log, limit: 200, window: 1s }
      - { algorithm: token_bucket, limit: 150, window: 1s }
EOF

# TIME_MS RULE KEY [COST]; the virtual clock never goes backwards
gen() { # seed start_ms
  /usr/bin/python3 - "$1" "$2" <<'PY'
import random, sys
rnd = random.Random(int(sys.argv[1]))
t = int(sys.argv[2])
rules = {'log300': 1000, 'log130': 150, 'log65': 400, 'pair': 1000}
for _ in range(12):
    # a burst on one key: one request a millisecond fills the log
    rule = rnd.choice(list(rules))
    w = rules[rule]
    key = 'k%d' % rnd.randrange(2)
    for _ in range(rnd.randrange(150, 500)):
        r = rnd.random()
        if r < 0.01:
            t += rnd.randrange(w // 4, w + 1)  # drops a large part of the log
        elif r < 0.85:
            t += 1
        elif r < 0.95:
            t += rnd.randrange(0, 4)
        cost = 1
        r = rnd.random()
        if r < 0.04:
            cost = rnd.randrange(2, 400)  # retry_after searched deep in the log
        elif r < 0.08:
            cost = 0
        print(t, rule, key, cost)
PY
}

pass=0
fail=0
for seed in 1 2 3; do
  for start in 0 1700000000000; do
    gen "$seed" "$start" >"$RL_DIR/trace"
    rcli log FLUSHALL >/dev/null
    "$S" replay --config "$RL_DIR/log.yaml" --store memory:// <"$RL_DIR/trace" >"$RL_DIR/mem" 2>"$RL_DIR/err"
    rc1=$?
    "$S" replay --config "$RL_DIR/log.yaml" --store "$URL" <"$RL_DIR/trace" >"$RL_DIR/red" 2>>"$RL_DIR/err"
    rc2=$?
    denied=$(awk '$1 == 0' "$RL_DIR/red" | wc -l)
    if [ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ] && [ -s "$RL_DIR/mem" ] && cmp -s "$RL_DIR/mem" "$RL_DIR/red"; then
      pass=$((pass + 1))
      echo "ok - seed $seed from t=$start: $(wc -l <"$RL_DIR/red") decisions identical ($denied denied)"
    else
      fail=$((fail + 1))
      echo "FAIL - seed $seed from t=$start: memory:// (exit $rc1) and redis:// (exit $rc2) differ"
      sed 's/^/    /' "$RL_DIR/err" | head -5
      paste "$RL_DIR/trace" "$RL_DIR/mem" "$RL_DIR/red" | awk -F'\t' '$2 != $3' | head -5 | sed 's/^/    /'
    fi
  done
done
echo "test_redis_lua_log: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
