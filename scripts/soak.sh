#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# soak.sh: sluiced on Redis under steady wrk load from many keys while Redis
# is frozen, killed, failed over and sluiced is reloaded and fed slow and
# abandoned connections (scripts/soak.py does the work; this file builds,
# checks the tools and runs its two phases).
#   SOAK_SECONDS=600      total; half on standalone Redis, half behind Sentinel
#   SOAK_MODES="standalone sentinel"
#   SOAK_TIMEOUT_MS=50    sluiced's timeout_ms
#   SOAK_MARGIN_MS=250    allowed on top of timeout_ms for any response
#   SOAK_RSS_SLACK_KB=4096  RSS max-min after warm-up
#   SOAK_FD_SLACK=4       fd count max-min at the quiet points after warm-up
#   SOAK_KEYS=100000      distinct keys of the wrk load
# Prints one PASS/FAIL line per criterion and phase; exit 1 when any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SOAK_SECONDS:=600}" "${SOAK_MODES:=standalone sentinel}"
: "${SOAK_TIMEOUT_MS:=50}" "${SOAK_MARGIN_MS:=250}" "${SOAK_RSS_SLACK_KB:=4096}"
: "${SOAK_FD_SLACK:=4}" "${SOAK_KEYS:=100000}" "${BUILD:=build}"
for t in wrk redis-server redis-sentinel redis-cli; do
  command -v "$t" >/dev/null || { echo "soak: $t not installed (scripts/deps.sh bench)" >&2; exit 1; }
done
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "${JOBS:-2}" --target sluiced >/dev/null

read -r -a modes <<<"$SOAK_MODES"
per=$((SOAK_SECONDS / ${#modes[@]}))
warm=$((per / 5 < 120 ? per / 5 : 120))
echo "soak: ${SOAK_SECONDS} s (${per} s per phase, warm-up ${warm} s), loadavg $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
rc=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for m in "${modes[@]}"; do
  /usr/bin/python3 scripts/soak.py --mode "$m" --seconds "$per" --warmup "$warm" \
    --sluiced "$BUILD/bin/sluiced" --lua scripts/soak_wrk.lua --timeout-ms "$SOAK_TIMEOUT_MS" \
    --margin-ms "$SOAK_MARGIN_MS" --rss-slack-kb "$SOAK_RSS_SLACK_KB" --fd-slack "$SOAK_FD_SLACK" \
    --keys "$SOAK_KEYS" | tee -a "$out" || rc=1
done
echo
echo "soak: summary (loadavg at the end $(cut -d' ' -f1-3 /proc/loadavg))"
grep -E '^(PASS|FAIL|# \[)' "$out" | grep -v '^# \[.*faults:' || true
if [ $rc -ne 0 ] || grep -q '^FAIL' "$out"; then echo "soak: FAILED"; exit 1; fi
echo "soak: all criteria passed"
