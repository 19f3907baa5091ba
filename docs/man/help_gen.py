#!/usr/bin/env python3
"""Generates the C help text of `warrant` and `warrantd` from their man pages,
so `--help`, `warrant help TOPIC` and the manual are one source.

usage: help_gen.py PAGE.scd SECTION OUT.h PREFIX
Each entry of SECTION (a line starting with `*` followed by tab-indented
lines) becomes {topic, synopsis, text}; the topic is the entry's first word
after the program name (warrant.1) or the option's long name (warrantd.8).
"""
import re
import sys
import textwrap


def plain(s):
    """scdoc markup to plain text: bold and underline markers go."""
    s = re.sub(r'(?<!\\)\*', '', s)
    s = re.sub(r'(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])', '', s)
    return s.replace('\\*', '*').replace('\\_', '_')


def entries(lines, section):
    out, cur, inside = [], None, False
    for line in lines:
        if line.startswith('# '):
            inside = line[2:].strip() == section
            continue
        if not inside:
            continue
        if line.startswith('*'):
            cur = {'synopsis': plain(line.strip()), 'text': []}
            out.append(cur)
        elif line.startswith('\t') and cur is not None:
            cur['text'].append(plain(line.strip()))
        elif not line.strip():
            continue
        else:
            cur = None  # a paragraph of the section, not an entry
    return out


def c_string(s):
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n') + '"'


def main():
    page, section, out, prefix = sys.argv[1:5]
    lines = open(page, encoding='utf-8').read().split('\n')
    items = entries(lines, section)
    if not items:
        sys.exit(f'help_gen: no entries under "# {section}" in {page}')
    with open(out, 'w', encoding='utf-8') as f:
        f.write(f'/* Generated from {page.split("/")[-1]} by help_gen.py: edit the man page. */\n')
        f.write(f'static const struct {{\n    const char *topic, *synopsis, *text;\n}} {prefix}_help[] = {{\n')
        for e in items:
            words = e['synopsis'].split()
            topic = words[1] if words[0] == 'warrant' and len(words) > 1 else words[0].lstrip('-').rstrip(',')
            text = textwrap.fill(' '.join(e['text']), 76, initial_indent='    ', subsequent_indent='    ')
            f.write(f'    {{{c_string(topic)}, {c_string(e["synopsis"])}, {c_string(text)}}},\n')
        f.write('};\n')


if __name__ == '__main__':
    main()
