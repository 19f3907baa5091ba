#!/usr/bin/env bash
# Receipts signed and verified per second (a chain of 100 000 with a checkpoint) beside libsodium's raw
# rate; then the Merkle tree's cost on sealing, against the same benchmark built from BASELINE (the commit
# before the tree, "today's seal rate"), both run interleaved in this run with the same arguments.
# usage: run.sh [CHAIN_LEN [DURABLE_DIR [SEALS]]]   env: WARRANT_BUILD (required), WARRANT_TLOG_BASELINE,
#        WARRANT_TLOG_ROUNDS (3), WARRANT_TLOG_SEALS (5000 on tmpfs per round), WARRANT_SEALERS_SEALS (2000)
set -euo pipefail
new="${WARRANT_BUILD:?}/bench/receipts/bench_receipts"
"$new" "$@"
# Durable seals with 1, 8 and 32 concurrent sealers on one store (group commit).
"$new" sealers "${2:-/tmp}" "${WARRANT_SEALERS_SEALS:-2000}"

baseline="${WARRANT_TLOG_BASELINE:-fc83000}"
rounds="${WARRANT_TLOG_ROUNDS:-3}"
seals="${WARRANT_TLOG_SEALS:-5000}"
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
git -C "$root" archive "$baseline" | tar -x -C "$work/src"
ln -s "$root/../shared" "$work/shared" 2>/dev/null || true
# Built like WARRANT_BUILD, so that only the code differs.
opt() { meson introspect --buildoptions "$WARRANT_BUILD" |
        python3 -c "import json, sys; print(next(o['value'] for o in json.load(sys.stdin) if o['name'] == '$1'))"; }
meson setup "$work/build" "$work/src" --buildtype="$(opt buildtype)" -Db_sanitize="$(opt b_sanitize)" >/dev/null
ninja -C "$work/build" bench/receipts/bench_receipts >/dev/null
old="$work/build/bench/receipts/bench_receipts"

# Per run: the tmpfs seal rate (the CPU cost, where the tree shows) and the durable one.
for i in $(seq "$rounds"); do
  "$old" "$seals" "${2:-/tmp}" 300 > "$work/old.$i"
  "$new" "$seals" "${2:-/tmp}" 300 > "$work/new.$i"
done
python3 - "$work" "$rounds" "$baseline" <<'PY'
import re, statistics, sys
work, rounds, baseline = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def figures(kind, label):
    out = []
    for i in range(1, rounds + 1):
        for line in open("%s/%s.%d" % (work, kind, i)):
            if line.startswith(label):
                out.append(float(re.findall(r"\s([0-9.]+) receipts/s", line)[0]))
    return statistics.median(out)
for label in ("seal, tmpfs", "seal, durable"):
    old, new = figures("old", label), figures("new", label)
    print("%-14s baseline %s %8.0f /s, with the tree %8.0f /s: cost %+.1f %% (target <= 10 %%; median of %d "
          "interleaved runs)" % (label, baseline, old, new, 100 * (old / new - 1), rounds))
PY
