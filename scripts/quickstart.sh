#!/usr/bin/env bash
# Installs what is missing, builds, and starts warrantd on loopback
# (WebSocket /ws + Streamable HTTP /mcp) with the bundled default policy,
# a demo workspace and a fresh token. Ctrl-C stops it.
#   WARRANT_PORT (8765)  WARRANT_STATE_DIR (~/.local/state/warrant)
#   WARRANT_WORKSPACE (/workspace/demo: the default policy allows /workspace)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/run-user.sh

build=${BUILD_DIR:-build}
[ -f "$build/build.ninja" ] || meson setup "$build" -Dtests=false >/dev/null
ninja -C "$build" >/dev/null

port=${WARRANT_PORT:-8765}
state=${WARRANT_STATE_DIR:-$HOME/.local/state/warrant}
workspace=${WARRANT_WORKSPACE:-/workspace/demo}
mkdir -p "$state" "$workspace"
chmod 700 "$state"
[ -f "$workspace/hello.txt" ] || printf 'hello from the warrant demo workspace\n' > "$workspace/hello.txt"
chmod -R a+rX "$workspace"  # commands run as an unprivileged user (policy sandbox.run_as)

tokens="$state/tokens"
if [ ! -s "$tokens" ]; then
  (umask 077; printf 'demo-agent %s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$tokens")
fi
token=$(awk '!/^#/ && NF==2 {print $2; exit}' "$tokens")
bin=$(cd "$build" && pwd)

cat <<MSG
warrantd is starting on 127.0.0.1:$port with the bundled default policy.
  WebSocket        ws://127.0.0.1:$port/ws?access_token=$token   (subprotocol "mcp")
  Streamable HTTP  http://127.0.0.1:$port/mcp   header  Authorization: Bearer $token
  stdio            $bin/server/warrantd --stdio --agent-id demo-agent --state-dir $state
  agent identity   demo-agent   (contracts must say actor.agent_id = "demo-agent")
  demo workspace   $workspace
  verify receipts  $bin/clients/warrant pubkey --state-dir $state > warrant.pub
                   $bin/clients/warrant verify chain --state-dir $state --pubkey warrant.pub
MSG
exec "$bin/server/warrantd" --listen "127.0.0.1:$port" --token-file "$tokens" --state-dir "$state"
