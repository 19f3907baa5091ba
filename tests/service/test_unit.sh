#!/usr/bin/env bash
# The systemd unit verifies cleanly. systemd-analyze exits 0 on unknown keys
# and bad values ("ignoring"), so any output at all is a failure.
# usage: test_unit.sh UNIT WARRANTD
set -uo pipefail
unit=$1 warrantd=$2
command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze missing"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# Point ExecStart at the built binary: verify checks that it exists.
sed "s|^ExecStart=[^ ]*|ExecStart=$(realpath "$warrantd")|" "$unit" > "$dir/warrantd.service"
# --man=no: the pages are checked by the package test, where they are installed
out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$dir/warrantd.service" 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
  echo "systemd-analyze verify (rc=$rc):"; echo "$out"; exit 1
fi
for key in 'Restart=on-failure' 'ExecReload=/bin/kill -HUP $MAINPID' 'StateDirectory=warrant' 'NoNewPrivileges=yes'; do
  grep -qxF "$key" "$unit" || { echo "unit lacks $key"; exit 1; }
done
# The check itself must be able to fail: a misspelt key is reported.
sed 's/^ProtectSystem=/ProtectSystm=/' "$dir/warrantd.service" > "$dir/bad.service"
systemd-analyze verify --man=no "$dir/bad.service" 2>&1 | grep -q "Unknown key 'ProtectSystm'" || { echo "verify did not flag a bad key"; exit 1; }
echo "unit verifies"
