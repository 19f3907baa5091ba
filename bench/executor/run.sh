#!/usr/bin/env bash
# Median wall time of the executor running /bin/true in the sandbox vs bare
# bwrap with the same mounts, over 100 interleaved runs; prints the ratio.
# Then the seccomp program's attach cost, shipped tree against a linear
# chain (bench_layers). The machine's load is printed first and last.
# usage: run.sh [RUNS [SECCOMP_ROUNDS]]   env: WARRANT_BUILD (required)
set -euo pipefail
echo "load before: $(uptime)"
trap 'echo "load after: $(uptime)"' EXIT
"${WARRANT_BUILD:?}/bench/executor/bench_executor" "${1:-100}"
"$WARRANT_BUILD/bench/executor/bench_layers" "${2:-1000}"
