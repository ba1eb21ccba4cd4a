#!/usr/bin/env bash
# Instructions per cached GET, for the daemon and (optionally) the Secrets Manager Agent:
# load-independent, unlike req/s on a shared machine.
#
#   bench/daemon_callgrind.sh                    # ours (BIN, built with symbols: see below)
#   bench/daemon_callgrind.sh AGENT_BINARY       # and the agent (bench/daemon_vs_agent.sh builds it)
#   N=20000 CONNS=4 bench/daemon_callgrind.sh
#
# Each daemon runs under `valgrind --tool=callgrind` in front of moto with 20 Secrets
# Manager secrets (cache TTL 300 s). After its cache is warm and 500 requests have gone by,
# the counters are zeroed, `bench/keepalive.py` sends N keep-alive GETs over CONNS
# connections (round-robin over the 20 names), and the counters are dumped: instructions
# / N is printed, and the profile is left in bench/out/callgrind/ for callgrind_annotate.
# For function names, build ours unstripped:
#   CARGO_PROFILE_RELEASE_STRIP=false cargo build --release --locked
set -euo pipefail
cd "$(dirname "$0")/.."

AGENT=${1:-}
N=${N:-10000}
CONNS=${CONNS:-4}
SECRETS=20
BIN=$(realpath "${BIN:-target/x86_64-unknown-linux-gnu/release/ecs-secrets}")
OUT=${OUT:-bench/out/callgrind}
rm -rf "$OUT"
mkdir -p "$OUT/agent-cwd"
OUT=$(cd "$OUT" && pwd)

need() { command -v "$1" >/dev/null 2>&1; }
need valgrind || { echo "bench: valgrind not found (Debian: apt-get install valgrind)" >&2; exit 1; }
need moto_server || { echo "bench: moto_server not found: pip install 'moto[server]'" >&2; exit 1; }
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
    AWS_DEFAULT_REGION=us-east-1 AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" \
    AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset ECS_SECRETS_TOKEN ECS_SECRETS_PATH AWS_ENV_PATH AWS_PROFILE AWS_SESSION_TOKEN \
    AWS_CONTAINER_AUTHORIZATION_TOKEN || true
for i in $(seq -f '%03g' 0 $((SECRETS - 1))); do
    printf 'value-%s-0123456789abcdef01234567' "$i" |
        "$BIN" create --backend secretsmanager --path /bench/app --name "S$i" --payload-stdin >/dev/null
done
TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '\n/+=')
printf '%s' "$TOKEN" >"$OUT/token"
chmod 600 "$OUT/token"

# measure NAME PORT HEADER PATH-PREFIX CMD...: the daemon must listen on PORT.
measure() {
    local name=$1 port=$2 header=$3 prefix=$4
    shift 4
    (cd "$OUT/agent-cwd" && exec valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.%p" \
        "$@") >"$OUT/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 1200); do
        curl -fs -o /dev/null "http://127.0.0.1:$port/ping" && break
        kill -0 "$pid" 2>/dev/null || { cat "$OUT/$name.log" >&2; exit 1; }
        sleep 0.1
    done
    local paths=()
    for i in $(seq -f '%03g' 0 $((SECRETS - 1))); do paths+=("$prefix$i"); done
    python3 bench/keepalive.py "127.0.0.1:$port" "${WARM:-500}" "$CONNS" "$header: $TOKEN" "${paths[@]}"
    callgrind_control -z "$pid" >/dev/null
    python3 bench/keepalive.py "127.0.0.1:$port" "$N" "$CONNS" "$header: $TOKEN" "${paths[@]}"
    callgrind_control -d "$name" "$pid" >/dev/null
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    local dump
    dump=$(ls "$OUT/$name".*.1 2>/dev/null | head -1)
    [ -n "$dump" ] || dump=$(ls "$OUT/$name".* | grep -v log | head -1)
    local ir
    ir=$(sed -n 's/^summary: //p;s/^totals: //p' "$dump" | head -1 | cut -d' ' -f1)
    printf '%-12s %10d instructions per request (%d requests, %d connections; %s)\n' \
        "$name" $((ir / N)) "$N" "$CONNS" "$dump"
}

PORT=$(free_port)
measure ours "$PORT" X-ECS-Secrets-Token /latest/secrets/S \
    "$BIN" daemon --backend secretsmanager --path /bench/app --listen "127.0.0.1:$PORT" \
    --token-file "$OUT/token" --cache-ttl 300 --timeout 60
if [ -n "$AGENT" ]; then
    PORT=$(free_port)
    printf 'http_port = "%s"\nttl_seconds = "300"\n' "$PORT" >"$OUT/agent.toml"
    AWS_TOKEN=$TOKEN measure agent "$PORT" X-Aws-Parameters-Secrets-Token \
        "/secretsmanager/get?secretId=bench/app/S" "$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")" \
        --config "$OUT/agent.toml"
fi
