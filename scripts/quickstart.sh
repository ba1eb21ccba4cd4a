#!/usr/bin/env bash
# The main job, end to end, on a fresh machine: build the static binary, start moto (a
# local AWS emulator) on loopback, store two secrets in Parameter Store, and run an
# "application" through ecs-secrets-exec that shows what it received. Nothing leaves the
# machine: every AWS call goes to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked
bin="$PWD/target/x86_64-unknown-linux-gnu/release/ecs-secrets"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null && break
  sleep 0.2
done

# What an ECS task gets from its environment: a region, the task role's credentials (here
# static test keys) and, only because this is an emulator, the endpoint.
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_EC2_METADATA_DISABLED=true

"$bin" install-links "$work" >/dev/null
echo "== $(du -h "$bin" | cut -f1) static binary: $(file -b "$bin" | grep -o 'static[-a-z]* linked')"
echo "== store two secrets under /prod/grafana (values from stdin, not argv)"
printf 'grafana' | "$bin" create --path /prod/grafana --name GF_DATABASE_USER --payload-stdin
printf "s3cr3t 'with' \$pecial chars" | "$bin" create --path /prod/grafana --name GF_DATABASE_PASSWORD --payload-stdin
echo "== ENTRYPOINT [\"ecs-secrets-exec\", \"--\", \"/run.sh\"] (here /run.sh prints what it got)"
ECS_SECRETS_PATH=/prod/grafana "$work/ecs-secrets-exec" -- sh -c \
  'echo "pid $$: GF_DATABASE_USER=$GF_DATABASE_USER GF_DATABASE_PASSWORD=$GF_DATABASE_PASSWORD"'
echo "== for shell scripts: vars=\$(ecs-secrets-env) || exit 1; eval \"\$vars\""
ECS_SECRETS_PATH=/prod/grafana "$work/ecs-secrets-env"
echo "== list (never payloads)"
"$bin" list --path /prod/grafana
