#!/usr/bin/env bash
# CCGate benchmark, one command: builds the dist (fat LTO) binaries, installs nginx if missing (Debian), raises the
# open-file limit, then runs target/dist/ccgate-bench, which starts the mock, nginx and ccgate on free
# 127.0.0.1 ports, measures every path, stops everything and writes bench/results/latest.{json,md}.
#
#   bench/run.sh            # full run (~6 minutes on 2 cores)
#   bench/run.sh --smoke    # CI smoke mode: tiny durations, fails on any error (see bench/smoke.sh)
#   bench/run.sh --with-litellm   # also LiteLLM's proxy as a peer (pip install into target/bench-venv)
#   bench/run.sh --help     # all options (durations, paths, bodies, concurrencies, output folder)
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
litellm=0
args=()
for a in "$@"; do
  case "$a" in
    --smoke) smoke=1; args+=("$a") ;;
    --with-litellm) litellm=1 ;;
    *) args+=("$a") ;;
  esac
done
set -- "${args[@]+"${args[@]}"}"

# --with-litellm: LiteLLM's proxy as a further peer, installed from PyPI into target/bench-venv (once).
if [ "$litellm" = 1 ]; then
  venv=target/bench-venv
  if [ ! -x "$venv/bin/litellm" ]; then
    echo "installing LiteLLM into $venv..."
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'litellm[proxy]==1.108.7'
  fi
  set -- "$@" --litellm "$venv/bin/litellm"
fi

# 10,000 slow streams need ~20,000 sockets in ccgate alone.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "open-file limit: $(ulimit -n)"

have_nginx() { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; }
if ! have_nginx; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing nginx from Debian's packages..."
    (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nginx) >/tmp/ccgate-bench-apt.log 2>&1 \
      || echo "NOTE: could not install nginx (see /tmp/ccgate-bench-apt.log)"
  else
    echo "NOTE: nginx is missing and cannot be installed here (needs root and apt-get)"
  fi
fi
if ! have_nginx; then
  if [ "$smoke" = 1 ]; then
    echo "NOTE: smoke mode continues without nginx: the nginx rows and ratios are skipped"
    set -- "$@" --no-nginx
  else
    echo "nginx is required for the full run (or pass --no-nginx)" >&2
  fi
fi

cargo build --profile dist -p ccgate -p ccgate-mock -p ccgate-bench
exec target/dist/ccgate-bench "$@"
