#!/usr/bin/env python3
"""Embeds the console's static files into a C source:
wr_console_asset(name, &len) -> bytes (NUL-terminated), NULL if unknown.
Each file must be UTF-8 and may not load anything from another origin."""
import os, re, sys

out, names = sys.argv[1], sys.argv[2:]
with open(out, "w", encoding="utf-8") as f:
    f.write("#include <stddef.h>\n#include <string.h>\n\n")
    f.write("const char *wr_console_asset(const char *name, size_t *len);\n\n")
    for i, path in enumerate(names):
        data = open(path, "rb").read()
        text = data.decode("utf-8")
        # No CDN, no remote fonts: the CSP would block them anyway.
        if re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", text) or re.search(r"url\(\s*[\"']?(?:https?:)?//", text):
            sys.exit(f"{path}: refers to another origin")
        f.write(f"static const char a{i}[] = {{{','.join(str(b) for b in data)},0}};\n")
    f.write("static const struct { const char *name; const char *data; size_t len; } assets[] = {\n")
    for i, path in enumerate(names):
        f.write(f'    {{"{os.path.basename(path)}", a{i}, sizeof a{i} - 1}},\n')
    f.write("};\n\n")
    f.write("""const char *wr_console_asset(const char *name, size_t *len)
{
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++)
        if (!strcmp(assets[i].name, name)) {
            *len = assets[i].len;
            return assets[i].data;
        }
    return NULL;
}
""")
