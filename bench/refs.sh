#!/usr/bin/env bash
# Build the release binary and run the --resolve-refs start-up benchmark (figures printed).
# Options go to bench/refs.py: --sizes, --latency-ms, --runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
cargo build --release --locked
exec python3 bench/refs.py "$@"
