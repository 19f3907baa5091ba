#!/usr/bin/env bash
# Installs the Debian 12 packages warrant needs that are not installed yet.
#   scripts/deps.sh          build + run (server, CLI, sandbox)
#   scripts/deps.sh --test   also what the test suites need (cmocka, node, ...)
set -euo pipefail

pkgs=(meson ninja-build pkg-config gcc libc6-dev
      libjson-c-dev libyaml-dev libsodium-dev libseccomp-dev libwebsockets-dev
      libarchive-dev libsqlite3-dev libpcre2-dev libssl-dev libcmocka-dev
      libidn2-dev bubblewrap slirp4netns util-linux openssl ca-certificates python3 scdoc
      musl-tools)
if [ "${1:-}" = "--test" ]; then
  pkgs+=(sqlite3 json-schema-test-suite git procps iproute2 strace curl)
  # the Debian package test: build, lint, install; the unit test: systemd-analyze
  pkgs+=(dpkg-dev debhelper fakeroot lintian)
  # /metrics is scraped with a real Prometheus text parser
  pkgs+=(python3-prometheus-client)
  command -v systemd-analyze >/dev/null 2>&1 || pkgs+=(systemd)
  # the approval console's browser test (tests/sdk/console.test.mjs)
  pkgs+=(chromium)
  python3 -c 'import cryptography' 2>/dev/null || pkgs+=(python3-cryptography)
  command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
  command -v npm >/dev/null 2>&1 || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
