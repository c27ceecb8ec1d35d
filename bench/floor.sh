#!/usr/bin/env bash
# How far CCGate is from the floor of its HTTP stack: nginx, a bare hyper + tokio reverse proxy (no auth, no
# metering, no ledger; crates/ccgate-bench/examples/bare_proxy.rs) and CCGate /anthropic, each in front of the same
# mock, measured one after the other in one run with the same load (wrk, keep-alive), repeated ROUNDS times,
# interleaved so a noisy moment hits every path alike.
#
#   bench/floor.sh [small|sse] [connections] [seconds] [rounds]
#
# Prints, per path and round: requests/s, and the proxy's CPU per request (utime+stime from /proc, user and
# system apart). Needs wrk and nginx (Debian: apt-get install wrk nginx).
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-small}
conns=${2:-32}
secs=${3:-5}
rounds=${4:-3}
for tool in wrk nginx; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "$tool is missing (apt-get install wrk nginx)" >&2; exit 2; }
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
# The same packages and targets as bench/callgrind.sh, so the two share one build.
cargo build --release -p ccgate -p ccgate-mock -p ccgate-bench --bins --example bare_proxy >/dev/null
out=$(mktemp -d /tmp/ccgate-floor.XXXXXX)
mkdir -p "$out/conf" "$out/data"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mock_port=$(free_port); nginx_port=$(free_port); bare_port=$(free_port); gw_port=$(free_port)
workers=$(nproc)
key=floor-tenant-key-0123456789abcdef
echo "{\"server\":{\"port\":$gw_port,\"host\":\"127.0.0.1\"}}" > "$out/conf/server.json"
echo "{\"upstreams\":[{\"id\":\"mock\",\"url\":\"http://127.0.0.1:$mock_port\",\"key\":\"k\"}],\"loadBalancer\":{\"healthCheckEnabled\":false}}" > "$out/conf/upstreams.json"
echo "{\"tenants\":[{\"id\":\"bench\",\"key\":\"$key\",\"allowedModels\":[\"*\"]}]}" > "$out/conf/tenants.json"
user_line=""; [ "$(id -u)" = 0 ] && user_line="user root;"
cat > "$out/nginx.conf" <<NGINX
$user_line
worker_processes $workers;
daemon off;
master_process on;
pid $out/nginx.pid;
error_log $out/nginx-error.log warn;
events { worker_connections 16384; multi_accept on; }
http {
  access_log off;
  client_body_temp_path $out/nb; proxy_temp_path $out/np; fastcgi_temp_path $out/nf; uwsgi_temp_path $out/nu; scgi_temp_path $out/ns;
  keepalive_requests 1000000;
  upstream mock { server 127.0.0.1:$mock_port; keepalive 256; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$nginx_port reuseport backlog=4096;
    location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_request_buffering off; proxy_buffering off; }
  }
}
NGINX
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$out"' EXIT
target/release/ccgate-mock --port "$mock_port" --config-json '{"record":false,"chunks":20}' > "$out/mock.log" 2>&1 &
pids+=($!)
"$nginx_bin" -c "$out/nginx.conf" -p "$out" 2>"$out/nginx.log" &
pids+=($!); nginx_pid=$!
target/release/examples/bare_proxy "$bare_port" "$mock_port" "$workers" 2>"$out/bare.log" &
pids+=($!); bare_pid=$!
target/release/ccgate serve --config-dir "$out/conf" --data-dir "$out/data" > "$out/ccgate.log" 2>&1 &
pids+=($!); gw_pid=$!
for _ in $(seq 120); do grep -q "listening on" "$out/ccgate.log" && break; sleep 0.25; done
sleep 0.5

case "$kind" in
  small) body='{"model":"claude-sonnet-4-6","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}' ;;
  sse) body='{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}' ;;
  *) echo "unknown kind $kind" >&2; exit 2 ;;
esac
cat > "$out/req.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["content-type"] = "application/json"
wrk.headers["x-api-key"] = "$key"
LUA

# utime and stime (clock ticks) of a process and its children threads; nginx: master + workers.
ticks() {
  local total_u=0 total_s=0 p
  for p in "$@"; do
    read -r u s < <(awk '{print $14, $15}' "/proc/$p/stat")
    total_u=$((total_u + u)); total_s=$((total_s + s))
  done
  echo "$total_u $total_s"
}
tree() { echo "$1"; pgrep -P "$1" || true; }
hz=$(getconf CLK_TCK)
measure() {
  local name=$1 port=$2 path=$3 root=$4
  local procs; procs=$(tree "$root")
  wrk -t2 -c"$conns" -d1 -s "$out/req.lua" "http://127.0.0.1:$port$path" >/dev/null
  read -r u0 s0 < <(ticks $procs)
  wrk -t2 -c"$conns" -d"$secs" -s "$out/req.lua" "http://127.0.0.1:$port$path" > "$out/wrk.txt"
  read -r u1 s1 < <(ticks $procs)
  local n rps
  n=$(awk '/requests in/{print $1}' "$out/wrk.txt")
  rps=$(awk '/Requests\/sec/{print $2}' "$out/wrk.txt")
  if grep -q "Non-2xx\|Socket errors" "$out/wrk.txt"; then echo "$name: errors: $(grep -E 'Non-2xx|Socket errors' "$out/wrk.txt")" >&2; fi
  awk -v name="$name" -v rps="$rps" -v n="$n" -v du=$((u1 - u0)) -v ds=$((s1 - s0)) -v hz="$hz" 'BEGIN {
    printf "%-18s %10.0f req/s   CPU/request %5.1f us (user %5.1f, system %5.1f)\n", name, rps, (du+ds)*1e6/hz/n, du*1e6/hz/n, ds*1e6/hz/n }'
}
echo "$kind body, $conns connections, ${secs}s per cell, $rounds rounds, $workers workers each ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
for r in $(seq "$rounds"); do
  echo "round $r"
  measure "nginx" "$nginx_port" /v1/messages "$nginx_pid"
  measure "bare hyper proxy" "$bare_port" /v1/messages "$bare_pid"
  measure "ccgate /anthropic" "$gw_port" /anthropic/v1/messages "$gw_pid"
done
