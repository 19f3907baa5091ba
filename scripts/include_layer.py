#!/usr/bin/env python3
"""Builds one module's include path: OUT/MODULE/ holds the module's own
folder and, for each module it may use, that module's one public header
(DEP/DEP.h). Nothing else is reachable, so a wrong #include fails to
compile. Run by meson at configure time.

usage: include_layer.py OUT SRCROOT MODULE [DEP...]"""
import os
import shutil
import sys

out, src, module, deps = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
layer = os.path.join(out, module)
shutil.rmtree(layer, ignore_errors=True)
os.makedirs(layer)
os.symlink(os.path.join(src, module), os.path.join(layer, module))
for dep in deps:
    header = os.path.join(src, dep, dep + '.h')
    if not os.path.isfile(header):
        sys.exit('include_layer: %s has no public header %s' % (dep, header))
    os.makedirs(os.path.join(layer, dep))
    os.symlink(header, os.path.join(layer, dep, dep + '.h'))
