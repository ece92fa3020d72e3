#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make fuzz: builds the libFuzzer targets (tests/fuzz, build-fuzz/ with
# clang) and runs each for FUZZ_SECONDS (default 600), one after another
# (one core), on a copy of its seed corpus.  Prints per target the
# executions, the coverage of libFuzzer's final stats (cov: edges, ft:
# features) and the crashes; exits 1 if any target crashed, leaked, timed
# out or ran out of memory, with the input saved in build-fuzz/fuzz-crashes/.
#   scripts/fuzz.sh [TARGET...]     default: every target
#   FUZZ_SECONDS=60 scripts/fuzz.sh url http
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-600}
dir=${FUZZ_BUILD:-build-fuzz}
all=(config rls url redis_reply replay http json)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

# Flags of one target beyond the common ones.
extra_flags() {
  case $1 in
    # one reply holds at most 2^20 elements (8 MB of pointers); an
    # allocation near 64 MB is a reply that should have been refused
    redis_reply) echo "-malloc_limit_mb=64" ;;
    # a connection or body is at most 64 KiB plus headers
    http) echo "-max_len=70000" ;;
    json) echo "-max_len=70000" ;;
    *) echo "" ;;
  esac
}

scripts/deps.sh fuzz
CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_FUZZ=ON >/dev/null
cmake --build "$dir" -j "$(nproc 2>/dev/null || echo 2)" --target fuzz_targets >/dev/null

crashdir=$dir/fuzz-crashes
mkdir -p "$crashdir"
rows=()
fail=0
for t in "${targets[@]}"; do
  bin=$dir/bin/fuzz_$t
  [ -x "$bin" ] || { echo "fuzz: no target '$t' (have: ${all[*]})" >&2; exit 2; }
  work=$dir/fuzz-run/$t
  rm -rf "$work"
  mkdir -p "$work/corpus"
  cp -r tests/fuzz/corpus/"$t"/. "$work/corpus/"
  dict=()
  [ -f tests/fuzz/"$t".dict ] && dict=(-dict=tests/fuzz/"$t".dict)
  before=$(find "$crashdir" -name "$t-*" | wc -l)
  echo "==== fuzz_$t for ${seconds}s ($(date -u +%FT%TZ))"
  # shellcheck disable=SC2046
  "$bin" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$crashdir/$t-" "${dict[@]}" $(extra_flags "$t") "$work/corpus" \
    >"$work/log" 2>&1 || true
  after=$(find "$crashdir" -name "$t-*" | wc -l)
  crashes=$((after - before))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  # the last status line: "#N  DONE  cov: C ft: F corp: ..." (or the last
  # pulse before a crash)
  last=$(grep -E '^#[0-9]+' "$work/log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
  if [ "$crashes" -gt 0 ]; then
    fail=1
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz_)' "$work/log" | head -5 || true
    ls -t "$crashdir"/"$t"-* | head -n "$crashes" | sed 's/^/  saved: /'
  fi
  rows+=("$(printf '%-12s %12s %7s %7s %7s %7s' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
    "${corp:-?}" "$crashes")")
  echo "${rows[-1]}"
done

echo
echo "fuzz: ${seconds}s per target, $(date -u +%FT%TZ), clang $(clang -dumpversion)"
printf '%-12s %12s %7s %7s %7s %7s\n' target executions cov ft corpus crashes
printf '%s\n' "${rows[@]}"
if [ $fail -ne 0 ]; then
  echo "fuzz: FAILED (inputs in $crashdir; logs in $dir/fuzz-run/<target>/log)"
  exit 1
fi
echo "fuzz: no crashes"
