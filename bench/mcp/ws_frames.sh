#!/usr/bin/env bash
# The cost of reading WebSocket frames in server/ws.c (lws 4.1 ignores the
# mask bit): builds BASELINE (the commit before, frames read by lws) like
# WARRANT_BUILD and runs ws_frames.py on both, interleaved.
# usage: ws_frames.sh [ROUNDS]   env: WARRANT_BUILD (required), WARRANT_WS_BASELINE (2ff97e7~1),
#        WS_FRAMES_N (2000 checks per round)
set -euo pipefail
baseline="${WARRANT_WS_BASELINE:-2ff97e7~1}"
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../baseline.sh"
baseline_extract "$baseline"
trap 'rm -rf "$baseline_work"' EXIT
baseline_build server/warrantd
echo "baseline: $baseline"
python3 "$here/ws_frames.py" "$baseline_work/build" "$WARRANT_BUILD" "${1:-3}"
