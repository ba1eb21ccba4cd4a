#!/usr/bin/env bash
# Load-test the daemon's cached reads on loopback.
#
#   bench/daemon.sh            # build release, seed 200 secrets in moto, 10 s of wrk
#   DURATION=30 CONNECTIONS=64 bench/daemon.sh
#   BIN=/path/to/ecs-secrets bench/daemon.sh    # an already built binary (no cargo build)
#   SOAK=1000000 bench/daemon.sh   # soak: wrk in 10 s rounds until 1,000,000 answers, over
#                                  # 20 secrets with --cache-ttl 2 (so the cache refreshes
#                                  # from upstream all along); prints RSS per round and
#                                  # fails on any non-200 answer or socket error
#
# Starts moto_server (a fake AWS) and the release binary on free loopback ports, seeds
# SECRETS SecureStrings through `ecs-secrets create`, starts `ecs-secrets daemon` with a
# token, reads every secret once (the cache is then warm), and runs wrk round-robin over
# all of them with the token header. Prints requests/s, p99 latency and the daemon's peak
# RSS (VmHWM), and fails if any answer was not 200. Logs land in bench/out/.
# Targets: >= 20,000 req/s, p99 < 5 ms, RSS < 20 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK=${SOAK:-}
if [ -n "$SOAK" ]; then
    SECRETS=${SECRETS:-20}
    CACHE_TTL=${CACHE_TTL:-2}
    MAX_ROUNDS=${MAX_ROUNDS:-100}
fi
SECRETS=${SECRETS:-200}
CACHE_TTL=${CACHE_TTL:-}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
BUILD=${BIN:+no}
BIN=${BIN:-target/x86_64-unknown-linux-gnu/release/ecs-secrets}
OUT=bench/out
mkdir -p "$OUT"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk; then
    if [ "$(id -u)" = 0 ] && need apt-get; then
        apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
    else
        echo "bench: wrk is not installed (Debian: apt-get install wrk)" >&2
        exit 1
    fi
fi
need moto_server || { echo "bench: moto_server not found: pip install 'moto[server]'" >&2; exit 1; }
need curl || { echo "bench: curl not found" >&2; exit 1; }

[ "$BUILD" = no ] || cargo build --release --locked 2>&1 | tail -1

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

MOTO_PORT=$(free_port)
moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$OUT/moto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do
    curl -fs -o /dev/null "http://127.0.0.1:$MOTO_PORT/moto-api/" && break
    sleep 0.1
done

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
    AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_EC2_METADATA_DISABLED=true \
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset ECS_SECRETS_TOKEN ECS_SECRETS_PATH AWS_ENV_PATH AWS_PROFILE || true
SCOPE=/bench/app

echo "bench: seeding $SECRETS secrets under $SCOPE"
for i in $(seq -f '%03g' 0 $((SECRETS - 1))); do
    printf 'value-%s-%s' "$i" "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" |
        "$BIN" create --path "$SCOPE" --name "S$i" --payload-stdin >/dev/null
done

TOKEN_FILE="$OUT/token"
head -c 24 /dev/urandom | base64 | tr -d '\n/+=' >"$TOKEN_FILE"
chmod 600 "$TOKEN_FILE"
TOKEN=$(cat "$TOKEN_FILE")

# The soak runs with --debug: one stderr line per upstream request, to count the refreshes.
"$BIN" daemon --path "$SCOPE" --listen 127.0.0.1:0 --token-file "$TOKEN_FILE" \
    ${CACHE_TTL:+--cache-ttl "$CACHE_TTL"} ${SOAK:+--debug} 2>"$OUT/daemon.log" &
DAEMON=$!
PIDS+=("$DAEMON")
ADDR=
for _ in $(seq 1 300); do
    ADDR=$(sed -n 's/^ecs-secrets: listening on //p' "$OUT/daemon.log")
    [ -n "$ADDR" ] && break
    kill -0 "$DAEMON" 2>/dev/null || { cat "$OUT/daemon.log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$ADDR" ] || { echo "bench: the daemon did not start" >&2; cat "$OUT/daemon.log" >&2; exit 1; }
echo "bench: daemon pid $DAEMON on $ADDR"

echo "bench: warming the cache"
for i in $(seq -f '%03g' 0 $((SECRETS - 1))); do
    curl -fs -o /dev/null -H "X-ECS-Secrets-Token: $TOKEN" "http://$ADDR/latest/secrets/S$i"
done
curl -fs -H "X-ECS-Secrets-Token: $TOKEN" "http://$ADDR/latest/secrets/S000" | grep -q '"payload":"value-000-'

cat >"$OUT/rr.lua" <<EOF
-- Round-robin over every seeded secret, with the token.
local reqs = {}
for i = 0, $SECRETS - 1 do
  reqs[#reqs + 1] = wrk.format("GET", string.format("/latest/secrets/S%03d", i),
                               { ["X-ECS-Secrets-Token"] = "$TOKEN" })
end
local n = 0
function request()
  n = n % #reqs + 1
  return reqs[n]
end
EOF

if [ -n "$SOAK" ]; then
    rss() { awk '/^VmRSS:/ {print $2}' "/proc/$DAEMON/status"; }
    upstream() { grep -c 'SSM\.' "$OUT/daemon.log" || true; }
    echo "bench: soak: wrk -t$THREADS -c$CONNECTIONS in 10 s rounds until $SOAK answers;"
    echo "       $SECRETS names, --cache-ttl $CACHE_TTL (each name refreshed from upstream every ${CACHE_TTL} s)"
    printf '%6s %12s %10s %12s %10s\n' round answers req/s "RSS (KiB)" upstream
    total=0 round=0 first_rss=$(rss) max_rss=0 bad=0
    printf '%6s %12s %10s %12s %10s\n' 0 0 - "$first_rss" "$(upstream)"
    while [ "$total" -lt "$SOAK" ] && [ "$round" -lt "$MAX_ROUNDS" ]; do
        round=$((round + 1))
        wrk -t"$THREADS" -c"$CONNECTIONS" -d10s -s "$OUT/rr.lua" "http://$ADDR" >"$OUT/wrk.txt"
        n=$(awk '/requests in/ {print $1}' "$OUT/wrk.txt")
        total=$((total + n))
        if grep -q 'Non-2xx\|Socket errors' "$OUT/wrk.txt"; then bad=$((bad + 1)); cat "$OUT/wrk.txt"; fi
        kill -0 "$DAEMON" 2>/dev/null || { echo "bench: FAILED: the daemon died" >&2; exit 1; }
        r=$(rss)
        [ "$r" -gt "$max_rss" ] && max_rss=$r
        printf '%6s %12s %10s %12s %10s\n' "$round" "$total" \
            "$(awk '/^Requests\/sec:/ {printf "%d", $2}' "$OUT/wrk.txt")" "$r" "$(upstream)"
    done
    curl -fs -H "X-ECS-Secrets-Token: $TOKEN" "http://$ADDR/latest/secrets/S000" | grep -q '"payload":"value-000-'
    # The daemon's own errors and warnings; not its debug lines, which include "connection
    # closed: connection error" when wrk drops its connections at the end of a round.
    errors=$(grep -c '^ecs-secrets: \(error\|warning\)' "$OUT/daemon.log" || true)
    echo
    echo "soak: $total answers in $round rounds, $(upstream) upstream requests, $bad rounds with errors, $errors error lines in the daemon log"
    echo "soak: RSS $first_rss KiB after warm-up, $(rss) KiB at the end, peak $max_rss KiB during the rounds"
    [ "$bad" = 0 ] && [ "$errors" = 0 ] && [ "$total" -ge "$SOAK" ] || { echo "bench: soak FAILED" >&2; exit 1; }
    exit 0
fi

echo "bench: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, cached GETs over $SECRETS names"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$OUT/rr.lua" "http://$ADDR" | tee "$OUT/wrk.txt"

if grep -q 'Non-2xx' "$OUT/wrk.txt"; then
    echo "bench: FAILED: some answers were not 200" >&2
    exit 1
fi
RPS=$(awk '/^Requests\/sec:/ {print $2}' "$OUT/wrk.txt")
P99=$(awk '$1 == "99%" {print $2}' "$OUT/wrk.txt")
HWM=$(awk '/^VmHWM:/ {print $2, $3}' "/proc/$DAEMON/status")
RSS=$(awk '/^VmRSS:/ {print $2, $3}' "/proc/$DAEMON/status")
SIZE=$(stat -c %s "$BIN")
echo
echo "requests/s:   $RPS   (target >= 20000)"
echo "p99 latency:  $P99   (target < 5ms)"
echo "daemon RSS:   peak $HWM, now $RSS   (target < 20 MiB)"
echo "binary size:  $SIZE bytes"
