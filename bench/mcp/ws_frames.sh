#!/usr/bin/env bash
# The cost of reading WebSocket frames in server/ws.c (lws 4.1 ignores the
# mask bit): builds BASELINE (the commit before, frames read by lws) like
# WARRANT_BUILD and runs ws_frames.py on both, interleaved.
# usage: ws_frames.sh [ROUNDS]   env: WARRANT_BUILD (required), WARRANT_WS_BASELINE (2ff97e7~1),
#        WS_FRAMES_N (2000 checks per round)
set -euo pipefail
baseline="${WARRANT_WS_BASELINE:-2ff97e7~1}"
here=$(cd "$(dirname "$0")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
git -C "$root" archive "$baseline" | tar -x -C "$work/src"
ln -s "$root/../shared" "$work/shared" 2>/dev/null || true
opt() { meson introspect --buildoptions "${WARRANT_BUILD:?}" |
        python3 -c "import json, sys; print(next(o['value'] for o in json.load(sys.stdin) if o['name'] == '$1'))"; }
meson setup "$work/build" "$work/src" --buildtype="$(opt buildtype)" -Db_sanitize="$(opt b_sanitize)" >/dev/null
ninja -C "$work/build" server/warrantd >/dev/null
echo "baseline: $baseline"
python3 "$here/ws_frames.py" "$work/build" "$WARRANT_BUILD" "${1:-3}"
