#!/usr/bin/env bash
# Median wall time of the executor running /bin/true in the sandbox vs bare
# bwrap with the same mounts, over 100 interleaved runs; prints the ratio.
set -euo pipefail
"${WARRANT_BUILD:?}/bench/executor/bench_executor" "${1:-100}"
