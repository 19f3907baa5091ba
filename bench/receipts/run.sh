#!/usr/bin/env bash
# Receipts signed and verified per second (chain of 100 000) beside libsodium's raw rate.
set -euo pipefail
"${WARRANT_BUILD:?}/bench/receipts/bench_receipts" "$@"
