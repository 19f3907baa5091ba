"""Shared by the Python tests: find live (not zombie) processes on this host
whose command line contains a marker, e.g. a test's unique temp dir."""
import os


def live_processes_with(marker: bytes, include_bwrap: bool = True) -> list:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                args = f.read()
            with open("/proc/%s/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # exited meanwhile
        if marker in args and state != "Z" and (include_bwrap or not args.startswith(b"/usr/bin/bwrap\0")):
            found.append(pid)
    return found
