#!/usr/bin/env bash
# The integration suite against an aarch64 build of ecs-secrets, run through qemu-user
# (binfmt_misc, registered by scripts/engine.sh): `scripts/test-arm64.sh BINARY [cargo test
# args…]`. The tests themselves are x86_64 (built and run as usual); every process of the
# binary under test is emulated. Tests that cannot run under qemu-user are skipped by name
# below, each with the emulator limit that stops it (docs/install.md lists them too).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: scripts/test-arm64.sh AARCH64-BINARY [cargo test args…]}
shift
file -b "$bin" | grep -q 'ARM aarch64' || {
  echo "test-arm64: $bin is not an aarch64 executable: $(file -b "$bin")" >&2
  exit 2
}
scripts/engine.sh
scripts/deps.sh
not_under_qemu=(
  # Signal delivery under qemu-user is qemu's, not the kernel's: of the signals the
  # supervisor forwards, not all reach the emulated CMD (seen 2026-12-07; qemu keeps some
  # real-time signals for itself). The signal table is checked natively in every CI run.
  the_supervisor_forwards_takes_and_ignores_what_the_table_says
)
skips=()
for t in "${not_under_qemu[@]}"; do skips+=(--skip "$t"); done
ECS_SECRETS_TEST_BIN="$bin" exec cargo test --locked --tests "$@" -- "${skips[@]}"
