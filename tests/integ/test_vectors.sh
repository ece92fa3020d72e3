#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Decision vectors: for every tests/vectors/<name>.in (with <name>.yaml and
# the expected <name>.out), runs `sluice replay --config <name>.yaml
# --store URL < <name>.in` for each store URL in SLUICE_VECTOR_STORES
# (space-separated, default "memory://") and fails on any difference.  The
# same table must give the same output on every store.
set -uo pipefail

: "${SLUICE_BIN:?set SLUICE_BIN to the directory holding sluice}"
: "${SLUICE_SRC:?set SLUICE_SRC to the source tree}"
S="$SLUICE_BIN/sluice"
[ -x "$S" ] || { echo "FAIL: $S is not executable"; exit 1; }
stores=${SLUICE_VECTOR_STORES:-memory://}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-vectors.XXXXXX")
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT

# ---- hook: stores that need a server (the Redis test extends this) -------
# Start servers here and append their URLs to $stores.
# Unless SLUICE_VECTOR_STORES is given, the table also runs on a redis-server
# started here (flushed before each vector, since replay's state outlives it).
vector_store_reset() { :; }
if [ -z "${SLUICE_VECTOR_STORES:-}" ]; then
  . "$SLUICE_SRC/tests/integ/redis_lib.sh"
  redis_lib_init
  trap 'cleanup; redis_lib_cleanup' EXIT
  redis_start vec
  stores="$stores redis://127.0.0.1:$RL_PORT_vec?timeout_ms=5000" # no fail-open on a busy machine
  vector_store_reset() { case $1 in redis://*) rcli vec FLUSHALL >/dev/null ;; esac; }
fi
# ---- end hook -------------------------------------------------------------

pass=0
fail=0
n=0
for in in "$SLUICE_SRC"/tests/vectors/*.in; do
  [ -e "$in" ] || continue
  name=${in%.in}
  n=$((n + 1))
  for f in "$name.yaml" "$name.out"; do
    [ -e "$f" ] || { echo "FAIL: $(basename "$name"): missing $(basename "$f")"; fail=$((fail + 1)); continue 2; }
  done
  for url in $stores; do
    vector_store_reset "$url"
    "$S" replay --config "$name.yaml" --store "$url" <"$in" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ "$rc" -eq 0 ] && diff -u "$name.out" "$tmp/out" >"$tmp/diff"; then
      pass=$((pass + 1))
    else
      fail=$((fail + 1))
      echo "FAIL: $(basename "$name") on $url (exit $rc)"
      sed 's/^/    /' "$tmp/err"
      head -n 40 "$tmp/diff" | sed 's/^/    /'
    fi
  done
done
if [ "$n" -eq 0 ]; then
  echo "FAIL: no vectors in $SLUICE_SRC/tests/vectors"
  exit 1
fi
echo "test_vectors: $n vectors x stores [$stores]: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
