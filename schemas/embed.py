#!/usr/bin/env python3
"""Embeds JSON schema files into a C source: wr_schema_text(name) -> the file's
text (what is published), wr_schema_bare_text(name) -> the same schema minified
and without annotations (what wr_schema_embedded compiles: parsing and compiling
cost per byte at every process start, and annotations never change a result).
Each file is checked at build time to be valid JSON without duplicate keys
(which the runtime parser refuses and json.loads would silently merge)."""
import json, sys

# JSON Schema 2020-12 annotation keywords: they never change a validation result.
ANNOTATIONS = {"title", "description", "$comment", "examples", "default", "deprecated", "readOnly", "writeOnly"}
# Keywords whose values hold subschemas (the ones lib/schema.c compiles).
SCHEMA_MAPS = {"properties", "patternProperties", "$defs", "definitions"}
SCHEMA_ONE = {"additionalProperties", "items", "not", "if", "then", "else"}
SCHEMA_LIST = {"prefixItems", "anyOf", "oneOf", "allOf"}


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    dup = {k for k in keys if keys.count(k) > 1}
    if dup:
        raise ValueError("duplicate keys: %s" % ", ".join(sorted(dup)))
    return dict(pairs)


def bare(schema):
    """The schema without annotations, recursing only into subschema positions
    (a property named "description" is kept)."""
    if not isinstance(schema, dict):
        return schema
    out = {}
    for k, v in schema.items():
        if k in ANNOTATIONS:
            continue
        if k in SCHEMA_MAPS and isinstance(v, dict):
            v = {name: bare(sub) for name, sub in v.items()}
        elif k in SCHEMA_ONE:
            v = bare(v)
        elif k in SCHEMA_LIST and isinstance(v, list):
            v = [bare(sub) for sub in v]
        out[k] = v
    return out


def c_bytes(data):
    return "{" + ",".join(str(b) for b in data) + ",0}"


out, base, names = sys.argv[1], sys.argv[2], sorted(sys.argv[3:])
with open(out, "w", encoding="utf-8") as f:
    f.write('#include "schemas/schemas.h"\n#include <string.h>\n\n')
    for i, name in enumerate(names):
        data = open(f"{base}/{name}", "rb").read()
        try:
            doc = json.loads(data, object_pairs_hook=no_duplicates)
        except ValueError as e:
            sys.exit(f"{name}: {e}")
        small = json.dumps(bare(doc), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        f.write(f"static const char s{i}[] = {c_bytes(data)};\n")
        f.write(f"static const char b{i}[] = {c_bytes(small)};\n")
    f.write("static const char *const names[] = {" + "".join(f'"{n}",' for n in names) + "NULL};\n")
    f.write("static const char *const texts[] = {" + "".join(f"s{i}," for i in range(len(names))) + "NULL};\n")
    f.write("static const char *const bare[] = {" + "".join(f"b{i}," for i in range(len(names))) + "NULL};\n")
    f.write("""
static const char *lookup(const char *const *in, const char *name) {
    for (size_t i = 0; names[i]; i++)
        if (strcmp(names[i], name) == 0) return in[i];
    return NULL;
}
const char *wr_schema_text(const char *name) { return lookup(texts, name); }
const char *wr_schema_bare_text(const char *name) { return lookup(bare, name); }
const char *const *wr_schema_names(void) { return names; }
""")
