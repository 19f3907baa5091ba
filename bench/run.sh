#!/usr/bin/env bash
# Runs every benchmark and prints its figures. Not a test: nothing here
# passes or fails on speed. Build dir: build-bench (optimised, no sanitizers).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
build=${BUILD_DIR:-build-bench}
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" >/dev/null
export WARRANT_BUILD=$(cd "$build" && pwd)
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
for b in executor receipts e2e policy mcp capsules egress; do
  if [ -x "bench/$b/run.sh" ]; then
    echo; echo "== $b"; "bench/$b/run.sh"
  fi
done
