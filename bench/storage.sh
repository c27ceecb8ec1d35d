#!/usr/bin/env bash
# The store benchmark (docs/scale-out.md), in one run:
#  1. throughput of one CCGate instance on SQLite against one on PostgreSQL: `ccgate-bench` on the /anthropic path
#     (small bodies and SSE, 32 connections), alternating between the two stores for several rounds, keeping each
#     store's median; the ratio PostgreSQL / SQLite comes from the same run;
#  2. `POST /usage` (the original's usage report) over ledgers of 1 and 10 million rows on both stores
#     (`ccgate-bench-storage`).
# Needs PostgreSQL (default postgres://postgres@127.0.0.1:5432/test; set CCGATE_BENCH_DATABASE_URL).
# Writes bench/results/storage.md (and .json).
#
#   bench/storage.sh                 # ~15 minutes on 2 cores
#   bench/storage.sh --rows 100000   # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
db="${CCGATE_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
rows="1000000,10000000"
rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
cargo build --release -p ccgate -p ccgate-mock -p ccgate-bench
ulimit -n 65536 2>/dev/null || true
out=target/bench-storage
rm -rf "$out"; mkdir -p "$out" bench/results
schema="bench_tp_$$"
# psql (Debian's postgresql-client) makes and drops the schema the PostgreSQL instance writes to.
run_sql() { psql "$db" -q -c "$1"; }
run_sql "CREATE SCHEMA $schema"
trap 'run_sql "DROP SCHEMA IF EXISTS $schema CASCADE" || true' EXIT
sep='?'; case "$db" in *\?*) sep='&' ;; esac
pg_url="${db}${sep}options=-c%20search_path%3D${schema}"
for i in $(seq 1 "$rounds"); do
  for store in sqlite postgres; do
    extra=()
    if [ "$store" = postgres ]; then extra=(--ccgate-env "CCGATE_DATABASE_URL=$pg_url"); fi
    target/release/ccgate-bench --paths anthropic --bodies small,sse --conns 32 --no-streams --no-nginx \
      --no-slow-baseline --duration 5 --out "$out/$store-$i" "${extra[@]}" > "$out/$store-$i.log" 2>&1 \
      || { echo "ccgate-bench on $store failed; see $out/$store-$i.log" >&2; exit 1; }
    echo "round $i: $store done"
  done
done
python3 - "$out" "$rounds" > "$out/throughput.md" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rps = {}
for store in ("sqlite", "postgres"):
    for i in range(1, rounds + 1):
        for r in json.load(open(f"{out}/{store}-{i}/latest.json"))["runs"]:
            if r["path"] == "anthropic":
                rps.setdefault((r["body"], store), []).append(r["rps"])
print("# Throughput: one instance on SQLite vs one on PostgreSQL\n")
print(f"`bench/storage.sh`: ccgate-bench, /anthropic, 32 connections, 5 s cells, {rounds} alternating rounds; median req/s.\n")
print("| body | SQLite req/s | PostgreSQL req/s | PostgreSQL / SQLite |")
print("|---|---:|---:|---:|")
for body in ("small", "sse"):
    s = statistics.median(rps[(body, "sqlite")]); p = statistics.median(rps[(body, "postgres")])
    print(f"| {body} | {s:,.0f} | {p:,.0f} | {p / s:.2f}× |")
PY
cat "$out/throughput.md"
target/release/ccgate-bench-storage --rows "$rows" --database-url "$db" --out "$out"
{ cat "$out/throughput.md"; echo; cat "$out/storage.md"; } > bench/results/storage.md
cp "$out/storage.json" bench/results/storage.json
echo "wrote bench/results/storage.md"
