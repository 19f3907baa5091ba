#!/usr/bin/env bash
# Receipts signed and verified per second (a chain of 100 000 with a checkpoint), each walk on one
# thread beside one thread of libsodium verifying the same signatures, by CPU time: bench_receipts
# prints both rates and the ratio (target >= 70 %). Then the Merkle tree's cost on sealing:
# bench_seal.c built against BASELINE (the commit before the tree, "today's seal rate"), both run
# interleaved in this run with the same arguments. The machine's load is printed first and last.
# With WARRANT_VERIFY_BASELINE_REF=<git ref> (e.g. main), bench_receipts.c is built against that commit
# too and the two run alternately, WARRANT_VERIFY_ROUNDS (2) times each, then the verify ratios of both
# are printed side by side (each run puts its walks against its own libsodium rounds, so the ratios
# compare across the machine's load).
# usage: run.sh [CHAIN_LEN [DURABLE_DIR [SEALS]]]   env: WARRANT_BUILD (required), WARRANT_TLOG_BASELINE
#        (fc83000), WARRANT_TLOG_ROUNDS (5), WARRANT_TLOG_SEALS (3000 on tmpfs per run), WARRANT_TLOG_ONLY=1
#        (the sealing comparison only), WARRANT_SEALERS_SEALS (2000), WARRANT_VERIFY_BASELINE_REF,
#        WARRANT_VERIFY_ROUNDS
set -euo pipefail
echo "load before: $(uptime)"
trap 'echo "load after: $(uptime)"' EXIT
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../baseline.sh"

# bench_receipts of this build and of the baseline's, alternately; the
# medians of their ratios to raw verify side by side.
verify_against_baseline() {
  baseline_extract "$WARRANT_VERIFY_BASELINE_REF"
  vwork=$baseline_work # global: the EXIT trap reads it
  trap 'rm -rf "$vwork"; echo "load after: $(uptime)"' EXIT
  cp "$here/bench_receipts.c" "$vwork/src/bench/receipts/"
  baseline_build bench/receipts/bench_receipts
  local i v
  for i in $(seq "${WARRANT_VERIFY_ROUNDS:-2}"); do
    for v in old new; do
      local bin="$WARRANT_BUILD/bench/receipts/bench_receipts"
      [ "$v" = old ] && bin="$vwork/build/bench/receipts/bench_receipts"
      "$bin" "$@" | tee -a "$vwork/$v.out" | sed "s/^/$v: /"
    done
  done
  python3 - "$vwork" "$WARRANT_VERIFY_BASELINE_REF" <<'PY'
import re, statistics, sys
work, ref = sys.argv[1], sys.argv[2]
for label in ("verify chain --dir --checkpoint, 1 thread", "verify chain (store), 1 thread"):
    med = {v: statistics.median(float(re.search(r"([0-9.]+) % of raw verify", l).group(1))
                                for l in open(f"{work}/{v}.out") if l.startswith(label)) for v in ("old", "new")}
    print(f"{label}: {med['old']:.1f} % of raw verify at {ref}, {med['new']:.1f} % with this build "
          f"(medians of the alternating runs)")
PY
  rm -rf "$vwork"
  trap 'echo "load after: $(uptime)"' EXIT
}

if [ -z "${WARRANT_TLOG_ONLY:-}" ]; then
  if [ -n "${WARRANT_VERIFY_BASELINE_REF:-}" ]; then
    verify_against_baseline "$@"
  else
    "${WARRANT_BUILD:?}/bench/receipts/bench_receipts" "$@"
  fi
  # Durable seals with 1, 8 and 32 concurrent sealers on one store (group commit).
  "$WARRANT_BUILD/bench/receipts/bench_receipts" sealers "${2:-/tmp}" "${WARRANT_SEALERS_SEALS:-2000}"
fi

baseline="${WARRANT_TLOG_BASELINE:-fc83000}"
rounds="${WARRANT_TLOG_ROUNDS:-5}"
seals="${WARRANT_TLOG_SEALS:-3000}"
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
