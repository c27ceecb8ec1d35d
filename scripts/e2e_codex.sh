#!/usr/bin/env bash
# Manual end-to-end check with the real OpenAI Codex CLI over the Responses API (not part of CI: it installs the
# CLI from npm). Starts the mock upstream and ccgate, then runs `codex exec` through ccgate three times:
#   1. a plain answer            -> Codex prints the mock's answer
#   2. an exec_command turn      -> the mock asks for exec_command, Codex runs it, the mock acknowledges the output
#   3. an apply_patch turn       -> the mock sends a freeform apply_patch, Codex edits a file
#   4. a tenant whose budget runs out -> Codex stops at the first refusal (one request, no retries)
# then checks that the ledger rows say protocol=responses and prints the time to first token CCGate measured for
# each request (ledger `ttft_ms`) and each turn's wall time as Codex saw it.
#
# Codex is configured as docs/responses.md §5 and the README describe: a `model_providers` entry with
# wire_api = "responses", analytics, plugins and apps off (so it talks to ccgate only), and a model catalog entry
# (`model_catalog_json`) giving the Claude model Codex's freeform apply_patch tool. Per-turn mock behaviour travels
# in an `x-mock-config` header (Codex's `env_http_headers`), which ccgate forwards upstream.
#
#   scripts/e2e_codex.sh            (CODEX_VERSION=0.171.0 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p ccgate -p ccgate-mock
root=$(pwd)
work=$(mktemp -d)
pids=""
cleanup() {
  for pid in $pids; do kill "$pid" 2>/dev/null || true; done
  for pid in $pids; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
wait_listening() {
  local out=$1 pattern=$2
  for _ in $(seq 100); do grep -q "$pattern" "$out" 2>/dev/null && return 0; sleep 0.1; done
  echo "did not start:" >&2; cat "$out" >&2; return 1
}

mkdir -p "$work/config" "$work/data" "$work/npm" "$work/proj" "$work/codex-home"
target/release/ccgate-mock --port 0 --config-json '{"tool_mode":"auto"}' > "$work/mock.out" 2>&1 &
pids="$pids $!"
wait_listening "$work/mock.out" "listening on"
mock_url=$(sed -n 's/.*listening on //p' "$work/mock.out")
key="e2e-codex-key-$(date +%s)-$$"
cat > "$work/config/upstreams.json" <<JSON
{"upstreams":[{"id":"mock","url":"$mock_url","key":"upstream-key"}],"loadBalancer":{"healthCheckEnabled":false}}
JSON
cat > "$work/config/tenants.json" <<JSON
{"tenants":[{"id":"codex","key":"$key","allowedModels":["*"]},
            {"id":"codex-budget","key":"$key-budget","allowedModels":["*"],"limits":{"daily":{"maxUSD":0.0001}}}]}
JSON
echo '{"server":{"port":0,"host":"127.0.0.1"},"openai":{"enabled":true}}' > "$work/config/server.json"
target/release/ccgate serve --config-dir "$work/config" --data-dir "$work/data" > "$work/gw.out" 2> "$work/gw.err" &
gw_pid=$!
pids="$pids $gw_pid"
wait_listening "$work/gw.out" "^CCGate listening on "
gw_url=$(sed -n 's/^CCGate listening on \([^ ]*\).*/\1/p' "$work/gw.out")
echo "mock $mock_url, ccgate $gw_url"

(cd "$work/npm" && npm install --silent "@openai/codex@${CODEX_VERSION:-0.171.0}" >/dev/null 2>&1)
codex="$work/npm/node_modules/.bin/codex"
"$codex" --version

# The model catalog entry: Codex's own entry for a general model, renamed to the Claude model, with the freeform
# apply_patch tool (README "Codex": the same recipe with jq).
"$codex" debug models > "$work/codex-models.json" 2>/dev/null
python3 - "$work/codex-models.json" "$work/codex-home/claude-models.json" <<'PY'
import json, sys
models = json.load(open(sys.argv[1]))["models"]
base = next(m for m in models if m["slug"] == "gpt-5.5")
base.update(slug="claude-sonnet-4-6", display_name="Claude Sonnet 4.6", description="Claude through CCGate",
            apply_patch_tool_type="freeform", context_window=200000, max_context_window=200000,
            upgrade=None, supports_search_tool=False, priority=1)
json.dump({"models": [base]}, open(sys.argv[2], "w"))
PY
cat > "$work/codex-home/config.toml" <<TOML
model = "claude-sonnet-4-6"
model_provider = "ccgate"
model_catalog_json = "$work/codex-home/claude-models.json"

[model_providers.ccgate]
name = "CCGate"
base_url = "$gw_url/openai/v1"
wire_api = "responses"
env_key = "CCGATE_KEY"
env_http_headers = { "x-mock-config" = "MOCK_CONFIG" }
supports_websockets = false

[analytics]
enabled = false

[features]
plugins = false
apps = false
TOML
export CODEX_HOME="$work/codex-home" CCGATE_KEY="$key"

# Runs one `codex exec` turn in the project folder; prints its output and wall time.
turn() {
  local name=$1 mock_config=$2 prompt=$3
  echo "--- turn: $name"
  local t0 t1
  t0=$(date +%s.%N)
  (cd "$work/proj" && MOCK_CONFIG="$mock_config" timeout 120 "$codex" exec --skip-git-repo-check \
     --dangerously-bypass-approvals-and-sandbox --ephemeral --strict-config "$prompt" </dev/null) \
     > "$work/$name.out" 2> "$work/$name.err" || { cat "$work/$name.out" "$work/$name.err"; echo "FAIL: codex exited non-zero"; exit 1; }
  t1=$(date +%s.%N)
  cat "$work/$name.out"
  echo "(turn wall time $(python3 -c "print(round(($t1-$t0)*1000))") ms)"
}

turn plain '{"tool_mode":"off"}' "say hi"
grep -q "Hello from the mock upstream." "$work/plain.out" || { echo "FAIL: plain answer not printed"; exit 1; }

turn exec '{"tool_mode":"auto","tool_name":"exec_command","tool_input":{"cmd":"echo mock-tool-ok > marker.txt && cat marker.txt"}}' "run the tool please"
[ "$(cat "$work/proj/marker.txt")" = "mock-tool-ok" ] || { echo "FAIL: exec_command did not run"; exit 1; }
grep -q "Tool result received" "$work/exec.out" || { echo "FAIL: the mock's answer to the tool result not printed"; exit 1; }

printf 'old line\nkeep me\n' > "$work/proj/hello.txt"
patch='*** Begin Patch\n*** Update File: hello.txt\n@@\n-old line\n+new line\n keep me\n*** End Patch\n'
turn apply_patch "{\"tool_mode\":\"auto\",\"tool_name\":\"apply_patch\",\"tool_input\":{\"input\":\"$patch\"}}" "edit hello.txt"
grep -q "^new line$" "$work/proj/hello.txt" || { echo "FAIL: apply_patch did not edit the file:"; cat "$work/proj/hello.txt"; exit 1; }
echo "hello.txt after the patch:"; cat "$work/proj/hello.txt"

# 4. An exhausted budget is final for Codex at once (HTTP 429 insufficient_quota, no Retry-After), not retried.
echo "--- turn: budget (a tenant whose daily budget one request uses up)"
CCGATE_KEY="$key-budget" turn budget_first '{"tool_mode":"off"}' "say hi"
t0=$(date +%s.%N)
if (cd "$work/proj" && CCGATE_KEY="$key-budget" MOCK_CONFIG='{"tool_mode":"off"}' timeout 120 "$codex" exec \
    --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox --ephemeral "say hi again" </dev/null) \
    > "$work/budget.out" 2> "$work/budget.err"; then
  echo "FAIL: codex succeeded past an exhausted budget"; exit 1
fi
t1=$(date +%s.%N)
grep -hi "error\|budget\|quota" "$work/budget.out" "$work/budget.err" | grep -v "^WARNING: proceeding" | head -3 || true
echo "(codex gave up after $(python3 -c "print(round(($t1-$t0)*1000))") ms)"

# Flush the ledger (stop ccgate), then check the rows.
kill "$gw_pid"; wait "$gw_pid" 2>/dev/null || true
echo "--- ledger rows (protocol, endpoint, model, stream, status, outcome, ttft_ms, tokens in/out)"
sqlite3 -separator ' | ' "$work/data/ccgate.db" \
  "SELECT protocol, endpoint, model, stream, status, outcome, ttft_ms, input_tokens, output_tokens FROM requests ORDER BY id"
refused=$(sqlite3 "$work/data/ccgate.db" "SELECT count(*) FROM requests WHERE tenant_id = 'codex-budget' AND status = 429")
[ "$refused" -eq 1 ] || { echo "FAIL: $refused refused budget requests; Codex must not retry an exhausted budget"; exit 1; }
echo "budget refusal: 1 request, no retry"
bad=$(sqlite3 "$work/data/ccgate.db" "SELECT count(*) FROM requests WHERE protocol <> 'responses' OR (status <> 200 AND tenant_id = 'codex')")
rows=$(sqlite3 "$work/data/ccgate.db" "SELECT count(*) FROM requests WHERE tenant_id = 'codex'")
[ "$rows" -ge 5 ] && [ "$bad" -eq 0 ] || { echo "FAIL: $rows rows, $bad not protocol=responses/200"; exit 1; }
echo "--- time to first token through CCGate (ledger ttft_ms over $rows requests): $(sqlite3 "$work/data/ccgate.db" \
  "SELECT 'min ' || min(ttft_ms) || ' ms, avg ' || round(avg(ttft_ms),1) || ' ms, max ' || max(ttft_ms) || ' ms' FROM requests WHERE tenant_id = 'codex'")"
echo "ALL PASSED"
