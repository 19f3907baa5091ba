#!/usr/bin/env bash
# Installs what is missing, builds with ASan+UBSan and runs every test.
# This is what CI runs (.ci/run). Build dir: build-test (override: BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
scripts/run-user.sh

if [ -f tests/sdk/package-lock.json ]; then
  npm ci --prefix tests/sdk --no-audit --no-fund --loglevel=error
fi

build=${BUILD_DIR:-build-test}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" -Db_sanitize=address,undefined -Db_lundef=false
fi
ninja -C "$build"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
meson test -C "$build" --print-errorlogs --num-processes 2 "$@" || status=$?

# One plain closing line that any CI reader understands.
python3 - "$build/meson-logs/testlog.json" <<'PY'
import json, sys
ok = bad = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"): ok += 1
    elif r == "SKIP": skip += 1
    else: bad += 1
print(f"{ok} passed, {bad} failed, {skip} skipped")
PY
exit $status
