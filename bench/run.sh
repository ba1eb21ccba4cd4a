#!/usr/bin/env bash
# Build the release binary and run the start-up benchmark (figures printed; results.json
# and startup.png in bench/out). Options go to bench.py: --sizes, --latency-ms, --runs,
# --backends.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
python3 -c 'import credstash, matplotlib' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check credstash matplotlib
cargo build --release --locked
exec python3 bench/bench.py "$@"
