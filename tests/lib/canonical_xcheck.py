#!/usr/bin/env python3
"""Cross-checks wr_canonical_json with the reference definition, Python's
json.dumps(o, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
byte for byte: fixed edge cases, every CSC fixture and example document, and
seeded random documents (strings over the whole Unicode range including
controls, "/", non-BMP; integers up to the int64/uint64 limits; doubles from
random bit patterns and short decimals). Each document is written in a
randomly chosen but equivalent textual form (ASCII escapes or literal UTF-8,
spacing, key order), so the parser is exercised too. Finally randomly
mutated (mostly broken) documents: anything wr_json_parse accepts must be
JSON that Python accepts and prints identically. Whenever the parser vouches
for a text being canonical already (wr_json_parse_canonical), it must be
exactly Python's canonical form; and it must vouch for every canonical text
without a fraction, an exponent or an escaped key (the receipts' fast path).

usage: canonical_xcheck.py CANON_TOOL [SEED]"""
import glob, hashlib, json, math, os, random, struct, subprocess, sys

def model(o):
    """The document as a CSC model holds it: integral floats (10.0, 1e1) are
    ints, as pydantic's int fields and JSON Schema's "integer" make them."""
    if isinstance(o, float) and math.isfinite(o) and o == int(o):
        return int(o)
    if isinstance(o, dict):
        return {k: model(v) for k, v in o.items()}
    if isinstance(o, list):
        return [model(v) for v in o]
    return o

def canon(o):
    return json.dumps(model(o), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

def drop_nulls(o):
    if isinstance(o, dict):
        return {k: drop_nulls(v) for k, v in o.items() if v is not None}
    if isinstance(o, list):
        return [drop_nulls(v) for v in o]
    return o

def rand_char(r):
    pick = r.random()
    if pick < 0.3:
        return chr(r.randint(0x20, 0x7e))
    if pick < 0.4:
        return chr(r.randint(1, 0x1f))  # U+0000 is refused by design (tested below)
    if pick < 0.45:
        return r.choice('/\\"\x7f')
    if pick < 0.75:
        return chr(r.randint(0x80, 0xd7ff))
    if pick < 0.85:
        return chr(r.randint(0xe000, 0xffff))
    return chr(r.randint(0x10000, 0x10ffff))

def rand_string(r):
    return "".join(rand_char(r) for _ in range(r.randint(0, 12)))

def rand_number(r):
    pick = r.random()
    if pick < 0.2:
        return r.choice([0, 1, -1, 2**63 - 1, -2**63, 2**64 - 1, 2**53, 2**53 + 1, 2**63])
    if pick < 0.45:
        return r.randint(-2**63, 2**64 - 1)
    if pick < 0.6:
        return r.randint(-1000, 1000)
    if pick < 0.8:
        while True:
            d = struct.unpack("<d", struct.pack("<Q", r.getrandbits(64)))[0]
            if math.isfinite(d):
                return d
    digits = r.randint(1, 17)
    return float(f"{r.randint(0, 10**digits)}e{r.randint(-30, 30)}") * r.choice([1, -1])

def rand_value(r, depth):
    pick = r.random()
    if depth < 5 and pick < 0.2:
        return {rand_string(r): rand_value(r, depth + 1) for _ in range(r.randint(0, 6))}
    if depth < 5 and pick < 0.35:
        return [rand_value(r, depth + 1) for _ in range(r.randint(0, 6))]
    if pick < 0.55:
        return rand_string(r)
    if pick < 0.85:
        return rand_number(r)
    return r.choice([None, True, False])

def shuffled(o, r):
    if isinstance(o, dict):
        items = list(o.items())
        r.shuffle(items)
        return {k: shuffled(v, r) for k, v in items}
    if isinstance(o, list):
        return [shuffled(v, r) for v in o]
    return o

def revalued(o, r):
    """The same shape with some values of other types or lengths, for the
    parser to read into the tree of the document before it."""
    if isinstance(o, dict):
        return {k: revalued(v, r) for k, v in o.items()}
    if isinstance(o, list):
        return [revalued(v, r) for v in o] + ([rand_value(r, 5)] if r.random() < 0.1 else [])
    return rand_value(r, 4) if r.random() < 0.5 else o

def text_of(o, r):
    return json.dumps(shuffled(o, r), ensure_ascii=r.random() < 0.5,
                      separators=r.choice([(",", ":"), (", ", ": "), (" ,", " : ")]))

FIXED = [
    '{"b":1,"a":2}', '{}', '[]', '{"a":{},"b":[]}', '"a/b"', '"\\u00e9\\ud83d\\ude00"',
    '"\\u0001\\u001f\\b\\f\\n\\r\\t\\"\\\\\x7f"', '[1.0,10.0,1e16,1e15,0.1,1e-05,0.0001,-0.0,5e-324]',
    '[9223372036854775807,-9223372036854775808,18446744073709551615]',
    '{"a":null,"b":{"c":null},"d":[null]}', '[1E+2,2.5e-3,123456789.123456789]',
    '{"\\u20ac":1,"\\u00e9":2,"z":3,"Z":4,"\\ud83d\\ude00":5}',
]

# refused by wr_json_parse although Python accepts them
REFUSED = ['null', '"\\u0000"', '{"a":1,"a":2}', '18446744073709551616', 'NaN', '1e400', '"\\ud800"']

def mutate(r, seeds):
    """A seed document with a few random edits: mostly invalid JSON."""
    alphabet = list('{}[]",:\\u0123456789abcdefABCDEF-+.eE tnrfl') + ["\\ud800", "\\udc00", "\x00", "\x7f"]
    s = list(r.choice(seeds))
    for _ in range(r.randint(1, 4)):
        i = r.randrange(len(s) + 1)
        op = r.random()
        if op < 0.4 and s:
            del s[min(i, len(s) - 1)]
        elif op < 0.8 or not s:
            s.insert(i, r.choice(alphabet))
        else:
            s[i:i] = s[r.randrange(len(s)):][:r.randint(1, 5)]
    return "".join(s).replace("\n", " ")

def vouchable(o):
    """Canonical text the parser must recognise as such: integers only, and
    keys written without escapes."""
    if isinstance(o, float):
        return False
    if isinstance(o, dict):
        return all(not any(c in '"\\' or c < " " for c in k) and vouchable(v) for k, v in o.items())
    if isinstance(o, list):
        return all(vouchable(v) for v in o)
    return True

def in_range(o):
    """Integers the parser takes (int64 or uint64)."""
    if isinstance(o, int) and not isinstance(o, bool):
        return -2**63 <= o < 2**64
    if isinstance(o, dict):
        return all(in_range(v) for v in o.values())
    if isinstance(o, list):
        return all(in_range(v) for v in o)
    return True

def python_canon(doc):
    try:
        return canon(json.loads(doc))
    except ValueError:
        return None

def main():
    tool = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 20261122
    r = random.Random(seed)
    docs = list(FIXED)
    # powers of two and their neighbours: where the round-trip interval is
    # lopsided and the nearest short decimal is not always the answer
    twos = [math.ldexp(1.0, e) for e in range(-1074, 1024)]
    docs.append(json.dumps(twos + [math.nextafter(v, 0) for v in twos] +
                           [math.nextafter(v, math.inf) for v in twos[:-1]]))
    csc = os.environ.get("CSC_DIR")
    if csc:
        for path in sorted(glob.glob(f"{csc}/**/*.json", recursive=True)):
            data = json.load(open(path, encoding="utf-8"))
            docs.append(json.dumps(data, ensure_ascii=False))
            if isinstance(data, list):  # each fixture's input on its own too
                docs += [json.dumps(x, ensure_ascii=False) for x in data]
    randoms = []
    while len(randoms) < 3000:
        v = rand_value(r, 0)
        if v is not None:  # a bare null document is refused (NULL is the error return)
            randoms.append(text_of(v, r))
    docs += randoms
    # the canonical forms themselves, for the parser to vouch for
    canonical_docs = [canon(o) for o in map(json.loads, FIXED + randoms) if vouchable(model(o)) and in_range(model(o))]
    # each followed by one of the same shape, read into the tree before it
    canonical_docs = [d for c in canonical_docs for d in (c, canon(revalued(json.loads(c), r)))]
    canonical_docs = [c for c in canonical_docs if vouchable(model(json.loads(c))) and in_range(model(json.loads(c)))]
    docs += canonical_docs
    docs += REFUSED
    # mutated documents: whatever the C side accepts, Python must accept and
    # print the same way (the C side may refuse more: duplicates, NUL, ...);
    # canonical seeds stay canonical token by token, for the direct build
    mutated = [mutate(r, FIXED + randoms[:50] + canonical_docs[:50]) for _ in range(5000)]
    docs += mutated
    inp = "".join(d + "\n" for d in docs).encode("utf-8")
    out = subprocess.run([tool], input=inp, capture_output=True, check=True).stdout.decode("utf-8")
    lines = out.split("\n")[:-1]
    assert len(lines) == len(docs), f"{len(lines)} outputs for {len(docs)} inputs"
    failures = 0
    mutated_set, accepted, vouched = set(mutated), 0, 0
    for doc, line in zip(docs, lines):
        if not line.startswith("ERR "):
            line, flag = line.rsplit("\t", 1)
            vouched += flag == "canonical"
            if flag == "canonical" and doc != python_canon(doc):
                failures += 1
                print(f"FAIL: vouched for as canonical: {doc!r}\n  Python: {python_canon(doc)!r}")
            if flag != "canonical" and doc == python_canon(doc) and vouchable(model(json.loads(doc))):
                failures += 1
                print(f"FAIL: canonical but not vouched for: {doc!r}")
        if doc in mutated_set:
            if line.startswith("ERR "):
                continue
            accepted += 1
            want = python_canon(doc)
            if want is None or line.split("\t")[0] != want:
                failures += 1
                print(f"FAIL: mutated input {doc!r}\n  C:      {line!r}\n  Python: {want!r}")
            continue
        if doc in REFUSED:
            if not line.startswith("ERR "):
                print(f"FAIL: accepted {doc!r}: {line!r}")
                failures += 1
            continue
        o = json.loads(doc)
        c = canon(o)
        want = f"{c}\t{canon(drop_nulls(o))}\t{hashlib.sha256(c.encode()).hexdigest()}"
        if line != want:
            failures += 1
            if failures <= 10:
                print(f"FAIL: input {doc!r}\n  C:      {line!r}\n  Python: {want!r}")
    print(f"{len(docs)} documents compared ({len(FIXED) + 1} fixed, {len(REFUSED)} refused, "
          f"{len(docs) - len(FIXED) - 1 - len(REFUSED) - 3000 - len(canonical_docs) - len(mutated)} CSC, "
          f"3000 random, {len(canonical_docs)} canonical forms, {len(mutated)} mutated of which {accepted} "
          f"accepted; {vouched} vouched for as canonical; seed {seed}); {failures} differences")
    sys.exit(1 if failures else 0)

main()
