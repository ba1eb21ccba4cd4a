#!/usr/bin/env bash
# Build the release binary and run the --template start-up benchmark (figures printed).
# Options go to bench/templates.py: --templates, --placeholders, --secrets, --runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
cargo build --release --locked
exec python3 bench/templates.py "$@"
