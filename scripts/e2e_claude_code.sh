#!/usr/bin/env bash
# Manual end-to-end check with the real Claude Code CLI (not part of CI: it downloads the CLI from npm).
# Starts the mock upstream (tool_mode auto) and ccgate, then runs `claude -p` twice through ccgate:
#   1. "say hi"               -> prints the mock's answer
#   2. a turn with Bash tool  -> the mock asks for Bash, Claude Code runs it, the mock acknowledges the result
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p ccgate -p ccgate-mock
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/config" "$work/cc"
target/release/ccgate-mock --port 0 --config-json '{"tool_mode":"auto"}' > "$work/mock.out" &
for _ in $(seq 50); do grep -q listening "$work/mock.out" && break; sleep 0.1; done
mock_url=$(sed -n 's/.*listening on //p' "$work/mock.out")
key="e2e-tenant-key-$(date +%s)"
cat > "$work/config/upstreams.json" <<JSON
{"upstreams":[{"id":"mock","url":"$mock_url","key":"upstream-key"}],"loadBalancer":{"healthCheckEnabled":false}}
JSON
echo "{\"tenants\":[{\"id\":\"e2e\",\"key\":\"$key\",\"allowedModels\":[\"*\"]}]}" > "$work/config/tenants.json"
echo '{"server":{"port":0,"host":"127.0.0.1"}}' > "$work/config/server.json"
target/release/ccgate serve --config-dir "$work/config" --data-dir "$work/data" > "$work/gw.out" 2> "$work/gw.err" &
for _ in $(seq 50); do grep -q "listening on" "$work/gw.out" && break; sleep 0.1; done
gw_url=$(sed -n 's/^CCGate listening on \([^ ]*\).*/\1/p' "$work/gw.out")
(cd "$work/cc" && npm install --silent @anthropic-ai/claude-code >/dev/null 2>&1)
claude="$work/cc/node_modules/.bin/claude"
export ANTHROPIC_BASE_URL="$gw_url/anthropic" ANTHROPIC_AUTH_TOKEN="$key"
echo "--- claude -p 'say hi'"
# Claude Code sends ANTHROPIC_CUSTOM_HEADERS upstream; ccgate forwards them, so this turn gets a plain answer.
(cd "$work/cc" && ANTHROPIC_CUSTOM_HEADERS="x-mock-tool-mode: off" "$claude" -p "say hi")
echo "--- claude -p with a Bash tool round trip"
(cd "$work/cc" && "$claude" -p "run the tool please" --allowedTools Bash)
echo "--- ledger"
target/release/ccgate usage --config-dir "$work/config" --data-dir "$work/data"
