#!/usr/bin/env bash
# CI smoke check of the benchmark harness: tiny durations, 200 slow streams; exits non-zero if any path has an
# error. Checks that it works, not how fast it is. Results go to target/bench-smoke/.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bench/run.sh --smoke "$@"
