#!/usr/bin/env bash
# Start-up cost of the trust roots: callgrind instruction counts of a zero-secret start-up
# (`env` of an empty path against a local moto) with no SSL variables, and with both
# SSL_CERT_FILE and SSL_CERT_DIR set to the system's certificates (as images that ship
# ca-certificates often do). Each certificate should be parsed once, so the two counts
# should differ by about the cost of reading the files only.
#
# Usage: bench/ssl_roots.sh [BINARY ...]
#   default: the release binary (built if missing). Name several binaries (e.g. an older
#   build) to compare them; figures are printed, one line per binary and setting.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
command -v valgrind >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
}
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  bin=target/x86_64-unknown-linux-gnu/release/ecs-secrets
  [ -x "$bin" ] || cargo build --release --locked
  bins=("$bin")
fi
file=${SSL_BENCH_FILE:-/etc/ssl/certs/ca-certificates.crt}
dir=${SSL_BENCH_DIR:-/etc/ssl/certs}
[ -f "$file" ] && [ -d "$dir" ] || { echo "need $file and $dir (apt-get install ca-certificates)" >&2; exit 1; }

tmp=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >"$tmp/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1 && break
  sleep 0.2
done

# Instructions of one start-up; the first run warms moto up and is not counted.
count() {
  local bin=$1; shift
  env -i PATH=/usr/bin:/bin HOME="$tmp" AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x \
    AWS_REGION=us-east-1 AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_EC2_METADATA_DISABLED=true \
    "$@" valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" \
    "$bin" env --path /bench/empty 2>&1 >/dev/null |
    sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p'
}

printf '%-50s %-28s %14s\n' binary setting instructions
for bin in "${bins[@]}"; do
  count "$bin" >/dev/null
  none=$(count "$bin")
  both=$(count "$bin" SSL_CERT_FILE="$file" SSL_CERT_DIR="$dir")
  printf '%-50s %-28s %14s\n' "$bin" "no SSL variables" "$none"
  printf '%-50s %-28s %14s  (+%s)\n' "$bin" "SSL_CERT_FILE + SSL_CERT_DIR" "$both" "$((both - none))"
done
