"""Hostile sample: every attempt to leave the output directory is reported.

Exit status 0 only if any escape succeeded (so a failed run means contained).
The network probe targets 192.0.2.1 (TEST-NET-1, RFC 5737: reserved for
documentation, never routed), so even outside a sandbox nothing is reached."""
import socket
import sys

capsule, out = sys.argv[1], sys.argv[2]
# (Not /tmp: the sandbox has a private, throw-away /tmp, so a write there
# succeeds and reaches nobody.)
attempts = {
    "write-own-files": capsule + "/escape.py",
    "write-etc": "/etc/warrant-capsule-escape",
    "write-var-tmp": "/var/tmp/warrant-capsule-escape",
    "write-home": "/home/warrant-capsule-escape",
}
escaped = []
lines = []
for name, path in sorted(attempts.items()):
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write("escaped\n")
        escaped.append(name)
        lines.append("%s: WROTE %s" % (name, path))
    except OSError as e:
        lines.append("%s: refused (%s)" % (name, e.strerror))
try:
    s = socket.create_connection(("192.0.2.1", 80), timeout=2)
    s.close()
    escaped.append("network")
    lines.append("network: CONNECTED")
except OSError as e:
    lines.append("network: refused (%s)" % (e.strerror or e))
with open(out + "/report.txt", "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(0 if escaped else 1)
