#!/usr/bin/env bash
# Receipts signed and verified per second (a chain of 100 000 with a checkpoint), each walk on one
# thread beside one thread of libsodium verifying the same signatures, by CPU time: bench_receipts
# prints both rates and the ratio (target >= 70 %). Then the Merkle tree's cost on sealing:
# bench_seal.c built against BASELINE (the commit before the tree, "today's seal rate"), both run
# interleaved in this run with the same arguments. The machine's load is printed first and last.
# usage: run.sh [CHAIN_LEN [DURABLE_DIR [SEALS]]]   env: WARRANT_BUILD (required), WARRANT_TLOG_BASELINE
#        (fc83000), WARRANT_TLOG_ROUNDS (5), WARRANT_TLOG_SEALS (3000 on tmpfs per run), WARRANT_TLOG_ONLY=1
#        (the sealing comparison only), WARRANT_SEALERS_SEALS (2000)
set -euo pipefail
echo "load before: $(uptime)"
trap 'echo "load after: $(uptime)"' EXIT
if [ -z "${WARRANT_TLOG_ONLY:-}" ]; then
  "${WARRANT_BUILD:?}/bench/receipts/bench_receipts" "$@"
  # Durable seals with 1, 8 and 32 concurrent sealers on one store (group commit).
  "$WARRANT_BUILD/bench/receipts/bench_receipts" sealers "${2:-/tmp}" "${WARRANT_SEALERS_SEALS:-2000}"
fi

baseline="${WARRANT_TLOG_BASELINE:-fc83000}"
rounds="${WARRANT_TLOG_ROUNDS:-5}"
seals="${WARRANT_TLOG_SEALS:-3000}"
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../baseline.sh"
baseline_extract "$baseline"
work=$baseline_work
trap 'rm -rf "$work"; echo "load after: $(uptime)"' EXIT
# The same benchmark source in both trees: only the library code differs.
cp "$here/bench_seal.c" "$work/src/bench/receipts/"
printf "executable('bench_seal', files('bench_seal.c'), dependencies : [wr_receipts_dep])\n" \
  >> "$work/src/bench/receipts/meson.build"
baseline_build bench/receipts/bench_seal
old="$work/build/bench/receipts/bench_seal" new="$WARRANT_BUILD/bench/receipts/bench_seal"

# Interleaved runs on tmpfs (the CPU cost, where the tree shows; CPU time is
# steady on a shared machine) and on DURABLE_DIR (what a server pays).
for i in $(seq "$rounds"); do
  for v in old new; do
    "${!v}" "$seals" /dev/shm >> "$work/$v.shm"
    "${!v}" 200 "${2:-/tmp}" >> "$work/$v.disk"
  done
done
python3 - "$work" "$baseline" "$rounds" <<'PY'
import re, statistics, sys
work, baseline, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
def med(name, label, what):
    return statistics.median(float(re.search(r"([0-9.]+) /s " + what, l).group(1))
                             for l in open(work + "/" + name) if l.startswith(label + ":"))
for label, where, what in (("seal", "shm", "of CPU time"), ("seal", "shm", "wall"), ("seal", "disk", "wall"),
                           ("verify chain, store", "shm", "of CPU time"), ("verify chain, dir", "shm", "of CPU time")):
    old, new = med("old." + where, label, what), med("new." + where, label, what)
    print("%-20s %-5s %-12s baseline %s %7.0f /s, with the tree %7.0f /s: cost %+5.1f %% (median of %d "
          "interleaved runs)" % (label, "tmpfs" if where == "shm" else "disk", what, baseline, old, new,
                                 100 * (old / new - 1), rounds))
PY
