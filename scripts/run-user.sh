#!/usr/bin/env bash
# Creates warrant-run, the dedicated system user that sandboxed commands run
# as when warrant runs as root (policy sandbox.run_as, the default): no
# login, no home, owns nothing else, so no other service shares its uid.
# Without root, nothing to do: commands run as the caller.
set -euo pipefail
user=warrant-run
if [ "$(id -u)" -ne 0 ] || getent passwd "$user" >/dev/null; then
  exit 0
fi
useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
  --comment "warrant sandboxed commands" "$user"
