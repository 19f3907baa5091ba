#!/usr/bin/env bash
# Egress proxy throughput: a 100 MiB download from a local HTTP server,
# direct (curl on the host) against through the egress proxy (curl in a
# network: allowlisted sandbox, the server listed as 127.0.0.1:PORT).
# Median of N runs each (default 5), interleaved; curl's own transfer rate,
# so sandbox start-up is not counted. Prints MiB/s and the ratio.
set -euo pipefail
build=${WARRANT_BUILD:?set WARRANT_BUILD to a build directory}
driver="$build/tests/egress/egress_driver"
[ -x "$driver" ] || { echo "egress: $driver missing (configure with -Dtests=true)"; exit 1; }
runs=${1:-5}
size_mib=100
dir=$(mktemp -d /tmp/wr-egress-bench-XXXXXX)
chmod 755 "$dir"
trap 'kill "$srv" 2>/dev/null; rm -rf "$dir"' EXIT
head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$dir/blob"
exec 3< <(python3 "$(dirname "$0")/serve.py" "$dir/blob")
srv=$!
read -r port <&3
url="http://127.0.0.1:$port/blob"
rate='%{speed_download}'

direct=() proxied=()
for _ in $(seq "$runs"); do
  direct+=("$(curl -sS -o /dev/null -w "$rate" "$url")")
  proxied+=("$("$driver" allowlisted --allow "127.0.0.1:$port" -- curl -sS -o /dev/null -w "$rate" "$url" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["status"]=="success", r; print(r["stdout"])')")
done
python3 - "$size_mib" "${direct[*]}" "${proxied[*]}" <<'PY'
import statistics, sys
mib = 1024 * 1024
d = statistics.median(float(x) for x in sys.argv[2].split()) / mib
p = statistics.median(float(x) for x in sys.argv[3].split()) / mib
print("%s MiB download, median of %d: direct %.0f MiB/s, through the egress proxy %.0f MiB/s: %.0f %% of direct (goal >= 80 %%)"
      % (sys.argv[1], len(sys.argv[2].split()), d, p, 100 * p / d))
PY
