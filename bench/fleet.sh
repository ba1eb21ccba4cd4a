#!/usr/bin/env bash
# A fleet starting at once (README, "Starting many tasks at once"): builds the release binary,
# then runs bench/fleet.py — K tasks `ecs-secrets exec` at once against moto behind a
# quota-enforcing proxy (40 GetParametersByPath/s, HTTP 400 ThrottlingException beyond,
# +10 ms a request) — and prints, per backend and K: started / failed / started-with-partial,
# the last start, the floor, requests and throttled requests. Writes bench/out/fleet.json and
# bench/fleet.png. Every run is bounded (each task is killed at --timeout + 15 s).
#
#   bench/fleet.sh                                   # the README's runs (about 4 minutes)
#   bench/fleet.sh --runs ssm:300:90,dynamodb:300:30 # backend:K:--timeout, comma-separated
#   BIN=/path/to/ecs-secrets bench/fleet.sh          # an already built binary (no cargo build)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
python3 -c 'import boto3, matplotlib' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check boto3 matplotlib
if [ -z "${BIN:-}" ]; then
    cargo build --release --locked
    BIN=target/x86_64-unknown-linux-gnu/release/ecs-secrets
fi
# 300 tasks hold 300 connections and files at once.
ulimit -n 4096 2>/dev/null || true
exec python3 bench/fleet.py --bin "$BIN" "$@"
