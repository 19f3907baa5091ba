#!/usr/bin/env bash
# Builds the Debian package from a copy of the tree, checks it with lintian,
# installs it with dpkg -i, runs the installed binaries once (CLI, stdio and
# a network server on the packaged config) and purges it again.
# usage: test_deb.sh SOURCE_ROOT
set -euo pipefail
src=$1
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "dpkg -i needs root"
for t in dpkg-buildpackage dh lintian fakeroot; do
  command -v $t >/dev/null || skip "$t missing (scripts/deps.sh --test installs it)"
done
if dpkg-query -W -f='${Status}' warrant 2>/dev/null | grep -q 'install ok installed'; then
  skip "a warrant package is already installed here; not replacing it"
fi

work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  dpkg --purge warrant >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir "$work/src"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$src" && git ls-files -z --cached --others --exclude-standard | tar --null -cf - -T -) | tar -xf - -C "$work/src"
else
  tar -C "$src" --exclude='./build*' --exclude=node_modules -cf - . | tar -xf - -C "$work/src"
fi
(cd "$work/src" && DEB_BUILD_OPTIONS="nocheck parallel=2" dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) ||
  { tail -40 "$work/build.log"; echo "dpkg-buildpackage failed"; exit 1; }
deb=$(ls "$work"/warrant_*_*.deb)

# lintian: no errors (it warns about running as root; that is not a finding)
lint=$(lintian -L '>=error' "$deb" 2>&1 | grep -v 'running with root privileges' || true)
[ -z "$lint" ] || { echo "lintian: $lint"; exit 1; }

dpkg -i "$deb" >"$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }
warrant --version | grep -qx "warrant [0-9.]*"
/usr/sbin/warrantd --version | grep -qx "warrantd [0-9.]*"
getent passwd warrant-run | grep -q ':/usr/sbin/nologin$' || { echo "no warrant-run system user"; exit 1; }
[ "$(stat -c %a:%U /var/lib/warrant)" = "700:root" ] || { echo "state dir not owner-only"; exit 1; }
[ "$(stat -c %a /etc/warrant/tokens)" = "600" ] || { echo "token file not 0600"; exit 1; }
for p in /usr/share/warrant/policies/default.yaml /usr/lib/systemd/system/warrantd.service \
         /usr/share/man/man1/warrant.1.gz /usr/share/man/man8/warrantd.8.gz /usr/share/man/man5/warrant-policy.5.gz; do
  [ -f "$p" ] || { echo "missing $p"; exit 1; }
done
warrant validate policy /usr/share/warrant/policies/default.yaml
# The archive commands run the installed warrant-archive (libexec), which alone links libarchive.
[ -x /usr/libexec/warrant/warrant-archive ] || { echo "missing /usr/libexec/warrant/warrant-archive"; exit 1; }
out=$(warrant verify bundle 2>&1 || true)
grep -q 'usage: warrant verify bundle' <<<"$out" || { echo "warrant verify bundle not routed: $out"; exit 1; }

# The installed server answers MCP on stdio...
reply=$(printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"deb-test","version":"1"}}}' |
  timeout 20 /usr/sbin/warrantd --stdio --state-dir "$work/state" 2>/dev/null | head -1)
echo "$reply" | grep -q '"serverInfo"' || { echo "stdio initialize failed: $reply"; exit 1; }

# ...and over HTTP on the packaged config (another port), with the packaged token.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/sbin/warrantd --config /etc/warrant/warrantd.conf --listen "127.0.0.1:$port" --state-dir "$work/state2" \
  2>"$work/warrantd.log" &
pid=$!
token=$(awk '!/^#/ && NF==2 {print $2; exit}' /etc/warrant/tokens)
python3 - "$port" "$token" <<'PY'
import http.client, json, sys, time
port, token = int(sys.argv[1]), sys.argv[2]
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "deb", "version": "1"}}})
hdr = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
for _ in range(100):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("POST", "/mcp", body, hdr)
        break
    except OSError:
        time.sleep(0.1)
r = c.getresponse(); r.read()
assert r.status == 401, f"no token: {r.status}"
c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
c.request("POST", "/mcp", body, dict(hdr, Authorization="Bearer " + token))
r = c.getresponse(); data = r.read().decode()
assert r.status == 200 and "serverInfo" in data, (r.status, data)
PY
kill -TERM "$pid"; wait "$pid" || { cat "$work/warrantd.log"; echo "warrantd did not exit cleanly on SIGTERM"; exit 1; }
pid=""

if command -v systemd-analyze >/dev/null; then
  out=$(systemd-analyze verify /usr/lib/systemd/system/warrantd.service 2>&1) || true
  [ -z "$out" ] || { echo "installed unit: $out"; exit 1; }
fi
dpkg --purge warrant >/dev/null
[ ! -e /usr/bin/warrant ] && [ ! -e /var/lib/warrant ] || { echo "purge left files behind"; exit 1; }
echo "package built, linted, installed, ran and purged"
