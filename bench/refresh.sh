#!/usr/bin/env bash
# The supervisor's footprint: RSS and CPU idle and over 1,000 refresh cycles (bench/refresh.py).
#   bench/refresh.sh                       # build release, then measure
#   BIN=/path/to/ecs-secrets bench/refresh.sh --cycles 2000
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BIN:-}" ]; then
    cargo build --release --locked
    BIN=target/x86_64-unknown-linux-gnu/release/ecs-secrets
fi
exec python3 bench/refresh.py --bin "$BIN" "$@"
