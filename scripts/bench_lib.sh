# SPDX-License-Identifier: MIT
# Sourced by the bench scripts: the measuring helpers they share, so that
# CPU per request is counted one way in every table.
#   wait_port PORT [TRIES]    until a TCP connect to 127.0.0.1:PORT succeeds
#                             (TRIES x 50 ms, default 200); 1 if it never does
#   cpu_secs PID...           user + system CPU seconds of running processes
#                             (a process already gone counts 0)
#   cpu_run OUT CMD...        runs CMD, stdout to OUT and stderr to OUT.err,
#                             and prints the CPU seconds it and its children
#                             used: for a client that exits, which /proc
#                             cannot be read after
#   us_per FROM TO N          microseconds per item of the TO - FROM CPU
#                             seconds, one decimal ("-" if N is empty or 0)
#   to_ms VALUE               wrk's latency ("812.00us", "1.20ms", "1.01s")
#                             in ms
clk_tck=$(getconf CLK_TCK)

wait_port() {
  local _
  for _ in $(seq 1 "${2:-200}"); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  return 1
}

cpu_secs() {
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  awk -v t="$t" -v hz="$clk_tck" 'BEGIN { printf "%.3f", t / hz }'
}

# bash's `time` reports the rusage of the children it waited for, so a
# function that forks (pin_cli's taskset, which execs the command) counts
cpu_run() {
  local out=$1 TIMEFORMAT='%3U %3S'
  shift
  { time "$@" >"$out" 2>"$out.err"; } 2>&1 | awk '{ printf "%.3f", $1 + $2 }'
}

us_per() { awk -v a="$1" -v b="$2" -v n="${3:-0}" 'BEGIN { if (n > 0) printf "%.1f", (b - a) * 1e6 / n; else print "-" }'; }

to_ms() { awk -v v="$1" 'BEGIN { u = v; sub(/[0-9.]+/, "", u); x = v + 0;
  if (u == "us") x /= 1000; else if (u == "s") x *= 1000; printf "%.3f", x }'; }
