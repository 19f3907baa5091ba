#!/usr/bin/env bash
# End-to-end run path against bare bwrap (latency, with a breakdown) and the concurrency figures.
# usage: run.sh [RUNS [CONCURRENT]]  (latency: 5 repeats of RUNS interleaved runs, median of the 5)   env: WARRANT_BUILD (default ./build). Needs root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python3 "$here/e2e.py" latency "${1:-30}" 5
echo
python3 "$here/e2e.py" concurrent "${2:-50}"
