#!/usr/bin/env bash
# MCP benchmarks of warrantd (latency, throughput, memory); prints a table.
# Uses $WARRANT_BUILD (set by bench/run.sh) or ./build; the Node clients come
# from tests/sdk (installed here with npm ci when missing).
# Knobs: BENCH_SEQ_N, BENCH_MULTI_N, BENCH_PIPE_N, BENCH_PIPE_RUNS, BENCH_IDLE_WS;
# BENCH_BASELINE=<build dir> measures that build too, interleaved (ratio);
# BENCH_BASELINE_REF=<git ref> builds that commit (like WARRANT_BUILD) for it;
# BENCH_INSTRUCTIONS=1 adds instructions per check (callgrind); BENCH_ONLY=pipelined.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export WARRANT_SRC=$root
export WARRANT_BUILD=${WARRANT_BUILD:-$root/build}
if [ ! -x "$WARRANT_BUILD/server/warrantd" ]; then
  echo "no $WARRANT_BUILD/server/warrantd: build first (or set WARRANT_BUILD)" >&2
  exit 2
fi
if [ ! -d "$root/tests/sdk/node_modules/ws" ]; then
  npm ci --prefix "$root/tests/sdk" --no-audit --no-fund --loglevel=error
fi
# 1 000 idle WebSocket sessions need ~1 000 descriptors on each side.
want=4096
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
  ulimit -Hn "$want" 2>/dev/null || want=$hard
fi
ulimit -n "$want"
if [ -n "${BENCH_BASELINE_REF:-}" ]; then
  . "$here/../baseline.sh"
  baseline_extract "$BENCH_BASELINE_REF"
  trap 'rm -rf "$baseline_work"' EXIT
  baseline_build server/warrantd executor/warrant-init
  echo "baseline: $BENCH_BASELINE_REF ($(git -C "$root" rev-parse --short "$BENCH_BASELINE_REF"))"
  export BENCH_BASELINE=$baseline_work/build
fi
node "$here/mcp_bench.mjs"
