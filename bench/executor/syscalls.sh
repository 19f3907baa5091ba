#!/usr/bin/env bash
# System calls the executor makes on the run's own thread per run of /bin/true
# with warm launchers (what the run's latency pays; the pool's worker thread is
# not traced), counted with strace -c over 10 and 30 runs of `bench_executor N
# exec-only` (the difference over 20 runs leaves the start-up out), for
# WARRANT_BUILD and for BASELINE (default 1200563, before the host facts and
# the overlap), whose tree is built with this bench_executor.c.
# usage: syscalls.sh [BASELINE]   env: WARRANT_BUILD (required)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../baseline.sh"
baseline_extract "${1:-1200563}"
trap 'rm -rf "$baseline_work"' EXIT
chmod 755 "$baseline_work" # the sandbox user execs its warrant-init
cp "$here/bench_executor.c" "$here/bench_util.h" "$baseline_work/src/bench/executor/"
baseline_build bench/executor/bench_executor executor/warrant-init executor/warrant-launch

calls() { # BENCH RUNS: syscalls of the main thread
  strace -c -o "$baseline_work/strace.txt" "$1" "$2" exec-only >/dev/null
  awk '$NF == "total" {print $4}' "$baseline_work/strace.txt"
}
per_run() {
  local a b
  a=$(calls "$1" 10)
  b=$(calls "$1" 30)
  echo $(((b - a) / 20))
}
old=$(per_run "$baseline_work/build/bench/executor/bench_executor")
new=$(per_run "${WARRANT_BUILD:?}/bench/executor/bench_executor")
echo "syscalls on the run's thread per run: baseline $old, this build $new ($((new - old)))"
