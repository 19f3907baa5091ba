"""Deterministic sample: prime counts below the limits named in a file.

Writes OUT/primes.tsv (limit, count, largest prime) and OUT/summary.json.
Nothing depends on time, locale, hash seeds or the machine."""
import json
import sys


def sieve(n):
    flags = bytearray([1]) * (n + 1)
    flags[0:2] = b"\x00\x00"
    for i in range(2, int(n ** 0.5) + 1):
        if flags[i]:
            flags[i * i::i] = bytearray(len(flags[i * i::i]))
    return flags


def main(limits_path, out_dir):
    with open(limits_path, encoding="utf-8") as f:
        limits = sorted({int(line) for line in f if line.strip()})
    flags = sieve(max(limits))
    rows, count, largest, upto = [], 0, 0, 0
    for limit in limits:
        for i in range(upto, limit + 1):
            if flags[i]:
                count, largest = count + 1, i
        upto = limit + 1
        rows.append((limit, count, largest))
    with open(out_dir + "/primes.tsv", "w", encoding="utf-8", newline="\n") as f:
        f.write("limit\tcount\tlargest\n")
        for r in rows:
            f.write("%d\t%d\t%d\n" % r)
    with open(out_dir + "/summary.json", "w", encoding="utf-8") as f:
        json.dump({"limits": len(rows), "primes_below_max": rows[-1][1]}, f, sort_keys=True)
        f.write("\n")
    print("%d limits, %d primes up to %d" % (len(rows), rows[-1][1], rows[-1][0]))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
