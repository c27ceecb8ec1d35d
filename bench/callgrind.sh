#!/usr/bin/env bash
# Instructions per request of ccgate on one path, counted by valgrind's callgrind: repeatable to ~2 % on a
# shared machine where wall-clock figures move by 20 %, so it is the figure to compare a change against.
#
#   bench/callgrind.sh small|sse|large|openai-small|openai-sse|openai-large|responses-large [seconds]
#
# Starts the mock and ccgate (dist build) on free ports with a temporary config, runs `wrk -c4` for a warm-up,
# zeroes the counters, runs `wrk` again for the measured window, dumps, and prints total instructions ÷ requests.
# The profile stays in $OUT (default /tmp/ccgate-callgrind) for `callgrind_annotate --inclusive=yes FILE`.
# Needs valgrind and wrk (Debian: apt-get install valgrind wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-small}
secs=${2:-10}
out=${OUT:-/tmp/ccgate-callgrind}
for tool in valgrind callgrind_control wrk; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install valgrind wrk)" >&2; exit 2; }
done
cargo build --profile dist -p ccgate -p ccgate-mock -p ccgate-bench --bins --example dump_bodies >/dev/null
rm -rf "$out" && mkdir -p "$out/conf" "$out/data"
target/dist/examples/dump_bodies "$out/bodies" >/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mock_port=$(free_port)
gw_port=$(free_port)
key=callgrind-tenant-key-0123456789
echo "{\"server\":{\"port\":$gw_port,\"host\":\"127.0.0.1\"},\"openai\":{\"enabled\":true}}" > "$out/conf/server.json"
echo "{\"upstreams\":[{\"id\":\"mock\",\"url\":\"http://127.0.0.1:$mock_port\",\"key\":\"k\"}],\"loadBalancer\":{\"healthCheckEnabled\":false}}" > "$out/conf/upstreams.json"
echo "{\"tenants\":[{\"id\":\"bench\",\"key\":\"$key\",\"allowedModels\":[\"*\"]}]}" > "$out/conf/tenants.json"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
target/dist/ccgate-mock --port "$mock_port" --config-json '{"record":false,"chunks":20}' > "$out/mock.log" 2>&1 &
pids+=($!)
valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.%p" \
  target/dist/ccgate serve --config-dir "$out/conf" --data-dir "$out/data" > "$out/ccgate.log" 2>&1 &
pids+=($!)
for _ in $(seq 120); do grep -q "listening on" "$out/ccgate.log" && break; sleep 0.5; done

msgs='"messages":[{"role":"user","content":"hi"}]'
case "$kind" in
  small) path=/anthropic/v1/messages; body="{\"model\":\"claude-sonnet-4-6\",\"max_tokens\":64,$msgs}" ;;
  sse) path=/anthropic/v1/messages; body="{\"model\":\"claude-sonnet-4-6\",\"max_tokens\":64,\"stream\":true,$msgs}" ;;
  large) path=/anthropic/v1/messages; file="$out/bodies/anthropic_large.json" ;;
  openai-small) path=/openai/v1/chat/completions; body="{\"model\":\"gpt-4o\",$msgs}" ;;
  openai-sse) path=/openai/v1/chat/completions; body="{\"model\":\"gpt-4o\",\"stream\":true,\"stream_options\":{\"include_usage\":true},$msgs}" ;;
  openai-large) path=/openai/v1/chat/completions; file="$out/bodies/openai_large.json" ;;
  # The same conversation as openai-large, over the Responses API (docs/responses.md).
  responses-large) path=/openai/v1/responses; file="$out/bodies/responses_large.json" ;;
  *) echo "unknown kind $kind" >&2; exit 2 ;;
esac
if [ -z "${file:-}" ]; then
  file="$out/body.json"
  printf '%s' "$body" > "$file"
fi
cat > "$out/req.lua" <<LUA
local f = io.open("$file", "rb"); local b = f:read("*all"); f:close()
wrk.method = "POST"
wrk.body = b
wrk.headers["content-type"] = "application/json"
wrk.headers["x-api-key"] = "$key"
wrk.headers["authorization"] = "Bearer $key"
LUA
url="http://127.0.0.1:$gw_port$path"
wrk -t1 -c4 -d3 -s "$out/req.lua" "$url" > /dev/null
callgrind_control -z > /dev/null 2>&1
wrk -t1 -c4 -d"$secs" -s "$out/req.lua" "$url" > "$out/wrk.txt"
n=$(awk '/requests in/{print $1}' "$out/wrk.txt")
if grep -q "Non-2xx" "$out/wrk.txt"; then
  echo "some answers were not 2xx: $(grep Non-2xx "$out/wrk.txt")" >&2
  exit 1
fi
callgrind_control -d > /dev/null 2>&1
sleep 1
profile=$(ls -S "$out"/callgrind.out.* | head -1)
ir=$(callgrind_annotate "$profile" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
echo "$kind: $n requests, $ir instructions, $((ir / n)) per request (profile: $profile)"
