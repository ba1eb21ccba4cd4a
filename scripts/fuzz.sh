#!/usr/bin/env bash
# Run every cargo-fuzz target for a bounded time (default 20 s each), keeping the corpus in
# fuzz/corpus/<target>. A crash leaves its input in fuzz/artifacts/<target> and fails the
# run; add the input to the unit tests as a regression.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-20}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz needs nightly-only flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target"
  echo "fuzz: $target for ${secs}s" >&2
  log=$(mktemp)
  if ! cargo fuzz run --sanitizer none "$target" "corpus/$target" -- \
      -max_total_time="$secs" -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz: $target FAILED; the input is in fuzz/artifacts/$target" >&2
    exit 1
  fi
  grep -E "^stat::(number_of_executed_units|new_units_added)|DONE" "$log" >&2 || true
  rm -f "$log"
done
