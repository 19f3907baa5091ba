#!/usr/bin/env python3
"""Embeds JSON schema files into a C source: wr_schema_text(name) -> text.
Each file is checked to be valid JSON at build time."""
import json, sys

out, base, names = sys.argv[1], sys.argv[2], sorted(sys.argv[3:])
with open(out, "w", encoding="utf-8") as f:
    f.write('#include "schemas/schemas.h"\n#include <string.h>\n\n')
    for i, name in enumerate(names):
        data = open(f"{base}/{name}", "rb").read()
        json.loads(data)
        body = ",".join(str(b) for b in data)
        f.write(f"static const char s{i}[] = {{{body},0}};\n")
    f.write("static const char *const names[] = {" + "".join(f'"{n}",' for n in names) + "NULL};\n")
    f.write("static const char *const texts[] = {" + "".join(f"s{i}," for i in range(len(names))) + "NULL};\n")
    f.write("""
const char *wr_schema_text(const char *name) {
    for (size_t i = 0; names[i]; i++)
        if (strcmp(names[i], name) == 0) return texts[i];
    return NULL;
}
const char *const *wr_schema_names(void) { return names; }
""")
