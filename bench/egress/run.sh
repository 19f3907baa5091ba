#!/usr/bin/env bash
# Egress proxy throughput: a 100 MiB download from a local HTTP server,
# direct (curl on the host) against through the egress proxy (curl in a
# network: allowlisted sandbox, the server listed as 127.0.0.1:PORT).
# Median of N runs each (default 5), interleaved; curl's own transfer rate,
# so sandbox start-up is not counted. Also the CPU time the proxy spends
# (the driver process's threads: the relay, supervision), against the CPU
# time of curl itself in the direct download: a figure that load on the
# machine changes much less than the rates.
set -euo pipefail
build=${WARRANT_BUILD:?set WARRANT_BUILD to a build directory}
driver="$build/tests/egress/egress_driver"
[ -x "$driver" ] || { echo "egress: $driver missing (configure with -Dtests=true)"; exit 1; }
exec python3 "$(dirname "$0")/bench.py" "$driver" "${1:-5}"
