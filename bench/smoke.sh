#!/usr/bin/env bash
# CI smoke check of the benchmark harness: tiny durations, 200 slow streams; exits non-zero if any path has an
# error. Checks that it works, not how fast it is. Results go to target/bench-smoke/. Also runs each criterion
# micro-benchmark once.
set -euo pipefail
cd "$(dirname "$0")/.."
# The criterion micro-benchmarks (meter, /openai translators), each run once as a check that they still build and
# their inputs still translate.
cargo bench -p ccgate-bench --bench micro -- --test
exec bench/run.sh --smoke "$@"
