#!/usr/bin/env bash
# Egress proxy throughput: a 100 MiB download from a local HTTP server,
# direct (curl on the host) against through the egress proxy (curl in a
# network: allowlisted sandbox, the server listed as 127.0.0.1:PORT).
# Median of N rounds each (default 5), interleaved; curl's own transfer
# rate, so sandbox start-up is not counted. Also the CPU time the proxy
# spends (the driver process's threads: the relay, supervision), against
# the CPU time of curl itself in the direct download: a figure that load on
# the machine changes much less than the rates.
#
#   run.sh [N [BASELINE_BUILD]]
#
# BASELINE_BUILD: another build (-Dtests=true) whose proxy is measured in
# the same rounds, e.g. the commit before a change.
#
# As root it then measures again in a private network namespace whose TCP
# congestion control is reno: the direct download no longer pays the host's
# pacing (BBR here), so that ratio is the relay's own cost (docs/egress.md).
set -euo pipefail
build=${WARRANT_BUILD:?set WARRANT_BUILD to a build directory}
driver="$build/tests/egress/egress_driver"
[ -x "$driver" ] || { echo "egress: $driver missing (configure with -Dtests=true)"; exit 1; }
args=("$driver" "${1:-5}")
if [ -n "${2:-}" ]; then
    base="$2/tests/egress/egress_driver"
    [ -x "$base" ] || { echo "egress: $base missing (configure with -Dtests=true)"; exit 1; }
    args+=("$base")
fi
bench=$(dirname "$0")/bench.py
python3 "$bench" "${args[@]}"
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && command -v ip >/dev/null; then
    echo "-- again in a private network namespace, reno on both paths:"
    unshare --net sh -c 'ip link set lo up &&
        echo reno > /proc/sys/net/ipv4/tcp_congestion_control && exec python3 "$@"' sh "$bench" "${args[@]}"
else
    echo "-- (the relay's own cost, with reno on both paths, needs root, unshare and ip)"
fi
