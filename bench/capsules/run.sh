#!/usr/bin/env bash
# Pack and verify throughput of a 100 MiB capsule (MB/s of payload, median
# of RUNS), with the real `warrant` CLI: incompressible bytes (random) and
# compressible text (numbers, one per line). Pack = walk + hash + gzip +
# hash again while writing; verify = gunzip + hash of every member + hash of
# the whole file, one pass.
# usage: bench/capsules/run.sh [RUNS]   (WARRANT_BUILD: build dir, default build)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
warrant=${WARRANT_BUILD:-build}/clients/warrant
size_mib=100
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }

bench() {
  local kind=$1 dir=$tmp/$1
  mkdir -p "$dir/data"
  printf 'name: bench-%s\nversion: "1"\nentrypoint: ["true"]\n' "$kind" >"$dir/capsule.yaml"
  # 4 files of 25 MiB: several members, as a real capsule has.
  for i in 1 2 3 4; do
    if [ "$kind" = random ]; then
      head -c $((size_mib / 4))M /dev/urandom >"$dir/data/part$i"
    else
      { seq 1 100000000 || true; } | head -c $((size_mib / 4))M >"$dir/data/part$i"
    fi
  done
  local pack=() verify=()
  for r in $(seq "$runs"); do
    local t0 t1 t2
    t0=$(now)
    "$warrant" capsule pack "$dir" -o "$tmp/$kind.capsule" >/dev/null 2>&1
    t1=$(now)
    "$warrant" capsule verify "$tmp/$kind.capsule" >/dev/null 2>&1
    t2=$(now)
    pack+=("$(awk -v a="$t0" -v b="$t1" -v m="$size_mib" 'BEGIN {print m * 1.048576 / (b - a)}')")
    verify+=("$(awk -v a="$t1" -v b="$t2" -v m="$size_mib" 'BEGIN {print m * 1.048576 / (b - a)}')")
  done
  printf '%-7s %d MiB -> %4d MiB capsule: pack %6.1f MB/s, verify %6.1f MB/s (median of %d)\n' "$kind" "$size_mib" \
    $(($(stat -c %s "$tmp/$kind.capsule") >> 20)) \
    "$(printf '%s\n' "${pack[@]}" | median)" "$(printf '%s\n' "${verify[@]}" | median)" "$runs"
  rm -rf "$dir" "$tmp/$kind.capsule"
}

bench random
bench text
