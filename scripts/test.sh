#!/usr/bin/env bash
# The test command: install what the tests need (moto, shells), then run every test through
# the real binary against a real moto server that the tests start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
exec cargo test --locked --all-targets "$@"
