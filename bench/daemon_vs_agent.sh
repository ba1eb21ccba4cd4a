#!/usr/bin/env bash
# The sidecar against AWS's Secrets Manager Agent, on cached GETs, in one run.
#
#   bench/daemon_vs_agent.sh AGENT_SRC_DIR
#   BIN=target/x86_64-unknown-linux-gnu/release/ecs-secrets bench/daemon_vs_agent.sh /tmp/agent
#   AGENT_TARGET_DIR=/tmp/agent-target ROUNDS=5 bench/daemon_vs_agent.sh /tmp/agent
#
# AGENT_SRC_DIR is a checkout of github.com/aws/aws-secretsmanager-agent kept OUTSIDE this
# repository (public source, never vendored here). It is built with
# `cargo build --release -p aws_secretsmanager_agent` (in AGENT_TARGET_DIR if set), ours
# with `cargo build --release --locked` unless BIN names a binary.
#
# Both run on loopback in front of one moto_server holding the same 20 secrets, each with
# a cache TTL of 300 s (so only cached reads are measured) and a token: ours
# `ecs-secrets daemon --backend secretsmanager --token-file`, the agent with its defaults
# but for its port (token from AWS_TOKEN). Then, ROUNDS times (3), for each in turn
# (interleaved A/B): `wrk -t1 -c32 -d3s` (warm-up, discarded), then
# `wrk -t1 -c32 -d10s --latency`, round-robin over the 20 secrets. Prints requests/s
# (median and range), p50 and p99 (ranges), peak RSS (VmHWM), CPU per request (the
# daemon's user+system time over the measured runs / their answers) and binary size.
# Fails if any answer is not 200. Logs land in bench/out/vs_agent/.
set -euo pipefail
cd "$(dirname "$0")/.."

AGENT_SRC=${1:?usage: bench/daemon_vs_agent.sh AGENT_SRC_DIR (a checkout of aws/aws-secretsmanager-agent)}
AGENT_SRC=$(cd "$AGENT_SRC" && pwd)
case "$AGENT_SRC/" in
"$(pwd)"/*) echo "bench: keep the agent's source outside this repository" >&2; exit 1 ;;
esac
[ -f "$AGENT_SRC/aws_secretsmanager_agent/Cargo.toml" ] ||
    { echo "bench: $AGENT_SRC is not a checkout of aws/aws-secretsmanager-agent" >&2; exit 1; }
ROUNDS=${ROUNDS:-3}
SECRETS=20
BUILD=${BIN:+no}
BIN=${BIN:-target/x86_64-unknown-linux-gnu/release/ecs-secrets}
OUT=bench/out/vs_agent
mkdir -p "$OUT/agent-cwd"

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
echo "bench: building the agent in $AGENT_SRC"
(cd "$AGENT_SRC" && CARGO_TARGET_DIR=${AGENT_TARGET_DIR:-$AGENT_SRC/target} \
    cargo build --release -p aws_secretsmanager_agent 2>&1 | tail -1)
AGENT=${AGENT_TARGET_DIR:-$AGENT_SRC/target}/release/aws_secretsmanager_agent
[ -x "$AGENT" ] || { echo "bench: no agent binary at $AGENT" >&2; exit 1; }

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
SCOPE=/bench/app

echo "bench: seeding $SECRETS secrets under $SCOPE (Secrets Manager: bench/app/S000…)"
for i in $(seq -f '%03g' 0 $((SECRETS - 1))); do
    printf 'value-%s-%s' "$i" "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" |
        "$BIN" create --backend secretsmanager --path "$SCOPE" --name "S$i" --payload-stdin >/dev/null
done

TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '\n/+=')
printf '%s' "$TOKEN" >"$OUT/token"
chmod 600 "$OUT/token"

wait_line() { # FILE SED-EXPR PID → the first match
    local got=
    for _ in $(seq 1 600); do
        got=$(sed -n "$2" "$1" | head -1)
        [ -n "$got" ] && { echo "$got"; return; }
        kill -0 "$3" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench: a daemon did not start:" >&2
    cat "$1" >&2
    exit 1
}

"$BIN" daemon --backend secretsmanager --path "$SCOPE" --listen 127.0.0.1:0 \
    --token-file "$OUT/token" --cache-ttl 300 2>"$OUT/ours.log" &
OURS=$!
PIDS+=("$OURS")
OURS_ADDR=$(wait_line "$OUT/ours.log" 's/^ecs-secrets: listening on //p' "$OURS")

AGENT_PORT=$(free_port)
printf 'http_port = "%s"\nttl_seconds = "300"\n' "$AGENT_PORT" >"$OUT/agent.toml"
AGENT_CFG=$(pwd)/$OUT/agent.toml
(cd "$OUT/agent-cwd" && exec env AWS_TOKEN="$TOKEN" "$AGENT" --config "$AGENT_CFG") \
    >"$OUT/agent.log" 2>&1 &
AGENTPID=$!
PIDS+=("$AGENTPID")
wait_line "$OUT/agent.log" '/listening on/p' "$AGENTPID" >/dev/null
AGENT_ADDR=127.0.0.1:$AGENT_PORT
echo "bench: ours pid $OURS on $OURS_ADDR, agent pid $AGENTPID on $AGENT_ADDR"

lua() { # FILE PATH-FORMAT HEADER
    cat >"$1" <<EOF
local reqs = {}
for i = 0, $SECRETS - 1 do
  reqs[#reqs + 1] = wrk.format("GET", string.format("$2", i), { ["$3"] = "$TOKEN" })
end
local n = 0
function request()
  n = n % #reqs + 1
  return reqs[n]
end
EOF
}
lua "$OUT/ours.lua" "/latest/secrets/S%03d" "X-ECS-Secrets-Token"
lua "$OUT/agent.lua" "/secretsmanager/get?secretId=bench/app/S%03d" "X-Aws-Parameters-Secrets-Token"

echo "bench: warming both caches"
for i in $(seq -f '%03g' 0 $((SECRETS - 1))); do
    curl -fs -o /dev/null -H "X-ECS-Secrets-Token: $TOKEN" "http://$OURS_ADDR/latest/secrets/S$i"
    curl -fs -o /dev/null -H "X-Aws-Parameters-Secrets-Token: $TOKEN" \
        "http://$AGENT_ADDR/secretsmanager/get?secretId=bench/app/S$i"
done
curl -fs -H "X-ECS-Secrets-Token: $TOKEN" "http://$OURS_ADDR/latest/secrets/S000" | grep -q '"payload":"value-000-'
curl -fs -H "X-Aws-Parameters-Secrets-Token: $TOKEN" \
    "http://$AGENT_ADDR/secretsmanager/get?secretId=bench/app/S000" | grep -q '"SecretString":"value-000-'

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, clock ticks
HZ=$(getconf CLK_TCK)
: >"$OUT/runs.txt"
for round in $(seq 1 "$ROUNDS"); do
    for who in ours agent; do
        if [ "$who" = ours ]; then pid=$OURS addr=$OURS_ADDR; else pid=$AGENTPID addr=$AGENT_ADDR; fi
        wrk -t1 -c32 -d3s -s "$OUT/$who.lua" "http://$addr" >/dev/null
        t0=$(ticks "$pid")
        wrk -t1 -c32 -d10s --latency -s "$OUT/$who.lua" "http://$addr" >"$OUT/wrk-$who-$round.txt"
        t1=$(ticks "$pid")
        if grep -q 'Non-2xx\|Socket errors' "$OUT/wrk-$who-$round.txt"; then
            cat "$OUT/wrk-$who-$round.txt" >&2
            echo "bench: FAILED: $who gave non-200 answers or socket errors" >&2
            exit 1
        fi
        n=$(awk '/requests in/ {print $1}' "$OUT/wrk-$who-$round.txt")
        rps=$(awk '/^Requests\/sec:/ {printf "%d", $2}' "$OUT/wrk-$who-$round.txt")
        ms() { awk -v p="$1" '$1 == p { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
            else if (v ~ /ms$/) sub(/ms$/, "", v); else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
            printf "%.2f", v }' "$OUT/wrk-$who-$round.txt"; }
        cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$n" 'BEGIN {printf "%.1f", t / hz / n * 1e6}')
        echo "$who $round $rps $(ms 50%) $(ms 99%) $cpu" | tee -a "$OUT/runs.txt"
    done
done

hwm() { awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
size() { awk -v s="$(stat -L -c %s "$1")" 'BEGIN {printf "%.1f", s / 1048576}'; }
kind() { if file -L "$1" | grep -q 'statically linked\|static-pie'; then echo static; else echo dynamic; fi; }
row() { # NAME WHO PID BINARY
    awk -v name="$1" -v who="$2" -v rss="$(hwm "$3")" -v bin="$(size "$4") MiB $(kind "$4")" '
        $1 == who { n++; r[n] = $3; p50[n] = $4; p99[n] = $5; cpu[n] = $6 }
        function lo(a,  i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 < m + 0) m = a[i]; return m }
        function hi(a,  i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 > m + 0) m = a[i]; return m }
        function median(a,  i, j, t, b) { for (i = 1; i <= n; i++) b[i] = a[i] + 0
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (b[j] < b[i]) { t = b[i]; b[i] = b[j]; b[j] = t }
            return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2 }
        END { printf "| %s | %d (%d–%d) | %s–%s ms | %s–%s ms | %s MiB | %s–%s µs | %s |\n",
            name, median(r), lo(r), hi(r), lo(p50), hi(p50), lo(p99), hi(p99), rss, lo(cpu), hi(cpu), bin }
    ' "$OUT/runs.txt"
}
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk -t1 -c32 -d10s --latency after a 3 s warm-up, interleaved, $ROUNDS rounds; cached GETs over $SECRETS secrets"
echo
echo "| | req/s median (range) | p50 | p99 | peak RSS | CPU per request | binary |"
echo "|---|---|---|---|---|---|---|"
row "ecs-secrets daemon" ours "$OURS" "$BIN"
row "SM Agent $(sed -n 's/^version = "\(.*\)"/\1/p' "$AGENT_SRC/aws_secretsmanager_agent/Cargo.toml" | head -1)" agent "$AGENTPID" "$AGENT"
