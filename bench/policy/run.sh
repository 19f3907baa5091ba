#!/usr/bin/env bash
# Policy decisions per CPU second (default pack) and the pack's load time.
set -euo pipefail
"${WARRANT_BUILD:?}/bench/policy/bench_policy" "$@"
