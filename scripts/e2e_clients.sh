#!/usr/bin/env bash
# Manual end-to-end check with the official OpenAI and Anthropic Python SDKs (NOT part of CI: it installs the
# SDKs from PyPI into target/e2e-venv).
#
#   scripts/e2e_clients.sh
#
# 1. builds ccgate and ccgate-mock (release);
# 2. starts the mock upstream and ccgate on free ports, with a temp config: one tenant allowed every model, one
#    allowed only haiku, one with a tiny daily budget; the OpenAI alias gpt-4o -> claude-sonnet-4-6;
# 3. creates target/e2e-venv (once) and installs scripts/requirements-e2e.txt into it;
# 4. runs scripts/e2e_clients.py against the gateway (see that file for the checks);
# 5. stops ccgate (so the ledger is flushed) and prints `ccgate usage`.
# Processes and temp files are always cleaned up. Exit status: that of e2e_clients.py.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p ccgate -p ccgate-mock

venv=target/e2e-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-e2e.txt

work=$(mktemp -d)
mock_pid=""
gw_pid=""
cleanup() {
  for pid in $gw_pid $mock_pid; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $gw_pid $mock_pid; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# Waits for a "listening" line in $1 (process $2), or fails with the logs.
wait_listening() {
  local out=$1 pid=$2 pattern=$3
  for _ in $(seq 100); do
    grep -q "$pattern" "$out" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "process $pid did not start; output:" >&2
  cat "$out" "$out.err" >&2 2>/dev/null || true
  return 1
}

mkdir -p "$work/config" "$work/data"
target/release/ccgate-mock --port 0 > "$work/mock.out" 2> "$work/mock.out.err" &
mock_pid=$!
wait_listening "$work/mock.out" "$mock_pid" "listening on"
mock_url=$(sed -n 's/.*listening on //p' "$work/mock.out")

key="e2e-tenant-key-$(date +%s)-$$"
cat > "$work/config/upstreams.json" <<JSON
{"upstreams": [{"id": "mock", "name": "mock", "url": "$mock_url", "key": "upstream-key", "weight": 1, "enabled": true}],
 "loadBalancer": {"healthCheckEnabled": false}}
JSON
cat > "$work/config/tenants.json" <<JSON
{"tenants": [{"id": "e2e", "name": "e2e", "key": "$key", "enabled": true, "allowedModels": ["*"]},
             {"id": "e2e-haiku", "name": "e2e-haiku", "key": "$key-haiku", "enabled": true, "allowedModels": ["claude-haiku*"]},
             {"id": "e2e-budget", "name": "e2e-budget", "key": "$key-budget", "enabled": true, "allowedModels": ["*"],
              "limits": {"daily": {"maxUSD": 0.0001}}}]}
JSON
cat > "$work/config/server.json" <<JSON
{"server": {"port": 0, "host": "127.0.0.1"},
 "openai": {"enabled": true, "models": {"gpt-4o": "claude-sonnet-4-6"}, "defaultModel": "claude-sonnet-4-6"}}
JSON
target/release/ccgate serve --config-dir "$work/config" --data-dir "$work/data" > "$work/gw.out" 2> "$work/gw.out.err" &
gw_pid=$!
wait_listening "$work/gw.out" "$gw_pid" "^CCGate listening on "
gw_url=$(sed -n 's/^CCGate listening on \([^ ]*\).*/\1/p' "$work/gw.out")
echo "mock $mock_url, ccgate $gw_url"

status=0
"$venv/bin/python" scripts/e2e_clients.py --gateway "$gw_url" --key "$key" --mock "$mock_url" \
  --restricted-key "$key-haiku" --budget-key "$key-budget" || status=$?

# Stop the gateway first so the ledger is flushed, then show what it recorded.
kill "$gw_pid" 2>/dev/null || true
wait "$gw_pid" 2>/dev/null || true
gw_pid=""
echo "--- ledger (ccgate usage)"
target/release/ccgate usage --config-dir "$work/config" --data-dir "$work/data" || true
if [ "$status" -ne 0 ]; then
  echo "--- ccgate log (tail)"
  tail -n 40 "$work/gw.out.err" || true
fi
exit "$status"
