#!/usr/bin/env bash
# The release images in a real Docker engine, run as ECS runs containers, for each architecture
# (arm64 through qemu-user and binfmt): `scripts/engine-test.sh [amd64|arm64]…` after
# scripts/release.sh (it loads dist/'s image archives). Root; installs what it needs
# (scripts/engine.sh, scripts/deps.sh). Everything stays on loopback: moto listens on 127.0.0.1,
# containers run with `--network host` or `--network none`.
#
# For each architecture an application image is built the way a user builds theirs: busybox of
# that architecture (Debian's busybox-static) plus `COPY --from=` the release image, with
# ENTRYPOINT ["ecs-secrets-exec", "--files", "/run/secrets", "--"]. Each check prints one line;
# the last line counts them, and the exit status is non-zero if one failed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/engine.sh
scripts/deps.sh
docker=docker
[ -x /usr/bin/docker ] && docker=/usr/bin/docker
dist=${ECS_SECRETS_DIST:-dist}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(amd64 arm64)

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
containers=()
cleanup() {
  for c in "${containers[@]}"; do "$docker" rm -f "$c" >/dev/null 2>&1 || true; done
  kill "$moto_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 150); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null && break
  sleep 0.2
done

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok      $arch: $1"; }
fail() { failed=$((failed + 1)); echo "FAILED  $arch: $1"; shift; for l in "$@"; do echo "        $l"; done; }
expect() { # name expected actual [context]
  if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "expected: $2" "got:      $3" "${@:4}"; fi
}

aws=(-e AWS_REGION=us-east-1 -e AWS_ACCESS_KEY_ID=testing -e AWS_SECRET_ACCESS_KEY=testing
  -e "AWS_ENDPOINT_URL=http://127.0.0.1:$port" -e AWS_EC2_METADATA_DISABLED=true
  -e ECS_SECRETS_TIMEOUT=120) # a loaded CI machine (and qemu) can make moto slow
# As an ECS task definition would: read-only root, a tmpfs for the files, an image user, no
# capabilities, host networking (awsvpc's loopback here).
ecs=(--network host --read-only --tmpfs /run/secrets --user 1000:1000 --cap-drop ALL "${aws[@]}")
tricky="it's \$HOME \"quoted\" \`tick\` & ; newline:
second line"

for arch in "${arches[@]}"; do
  case "$arch" in
    amd64) deb_arch=amd64 ;;
    arm64) deb_arch=arm64 ;;
    *) echo "engine-test: unknown architecture $arch (amd64, arm64)" >&2; exit 2 ;;
  esac
  image="ecs-secrets:$version-$arch"
  "$docker" load -q -i "$dist/ecs-secrets-$version-image-$arch.tar" >/dev/null
  plat=(--platform "linux/$arch")

  # The application image: busybox of this architecture, and ecs-secrets from the release image.
  ctx="$work/app-$arch"
  mkdir -p "$ctx/bin"
  # FROM scratch has no loader: the busybox must be static (Debian's busybox-static).
  if [ "$deb_arch" = "$(dpkg --print-architecture)" ] &&
    file -L /bin/busybox 2>/dev/null | grep -q 'statically linked'; then
    cp /bin/busybox "$ctx/bin/busybox"
  else
    [ "$deb_arch" = "$(dpkg --print-architecture)" ] ||
      dpkg --print-foreign-architectures | grep -qx "$deb_arch" || {
      dpkg --add-architecture "$deb_arch"
      apt-get update -qq
    }
    (cd "$work" && apt-get download -qq "busybox-static:$deb_arch" >/dev/null)
    dpkg-deb -x "$work"/busybox-static_*_"$deb_arch".deb "$work/bb-$deb_arch"
    cp "$work/bb-$deb_arch/bin/busybox" "$ctx/bin/busybox"
  fi
  for applet in sh cat id sleep echo; do ln -sf busybox "$ctx/bin/$applet"; done
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $image AS ecs-secrets
FROM scratch
COPY bin/ /bin/
COPY --from=ecs-secrets /ecs-secrets /usr/local/bin/ecs-secrets
COPY --from=ecs-secrets /ecs-secrets-exec /ecs-secrets-env /usr/local/bin/
ENV PATH=/usr/local/bin:/bin
ENTRYPOINT ["ecs-secrets-exec", "--files", "/run/secrets", "--"]
CMD ["sh", "-c", "echo hello"]
DOCKERFILE
  app="ecs-secrets-engine-test-app:$arch"
  DOCKER_BUILDKIT=1 "$docker" build -q "${plat[@]}" -t "$app" "$ctx" >/dev/null

  # The release image itself: labels, version, and an admin one-shot storing the secrets.
  labels=$("$docker" inspect -f '{{index .Config.Labels "org.opencontainers.image.version"}} {{index .Config.Labels "org.opencontainers.image.revision"}} {{index .Config.Labels "org.opencontainers.image.source"}}' "$image")
  said=$("$docker" run --rm --network none "${plat[@]}" "$image" ecs-secrets --version)
  revision=$(echo "$labels" | cut -d' ' -f2)
  expect "image labels name the version and revision; --version agrees (--network none)" \
    "ecs-secrets $version ($revision" "${said% *}" "labels: $labels"
  img_arch=$("$docker" inspect -f '{{.Architecture}}' "$image")
  expect "image architecture" "$arch" "$img_arch"
  path="/engine/$arch"
  set +e
  printf 'alpha' | "$docker" run --rm -i --network host --read-only --cap-drop ALL "${aws[@]}" "${plat[@]}" \
    "$image" ecs-secrets create --path "$path" --name A --payload-stdin >/dev/null
  printf '%s' "$tricky" | "$docker" run --rm -i --network host "${aws[@]}" "${plat[@]}" \
    "$image" ecs-secrets create --path "$path" --name TRICKY --payload-stdin >/dev/null
  set -e
  listed=$("$docker" run --rm --network host "${aws[@]}" "${plat[@]}" "$image" ecs-secrets list --path "$path" \
    | python3 -c 'import json, sys; print(" ".join(json.loads(l)["name"] for l in sys.stdin))')
  expect "admin one-shots in the image (create, list)" "A TRICKY" "$listed"

  run() { "$docker" run --rm "${plat[@]}" "$@"; }
  # exec as PID 1: CMD gets PID 1, the image user, the secrets in its environment and files.
  out=$(run "${ecs[@]}" -e "ECS_SECRETS_PATH=$path" "$app" \
    sh -c 'echo "pid=$$ uid=$(id -u):$(id -g) A=$A file=$(cat /run/secrets/A)"' 2>&1)
  expect "ENTRYPOINT exec: CMD is PID 1, user 1000:1000, env and /run/secrets file" \
    "pid=1 uid=1000:1000 A=alpha file=alpha" "$out"
  out=$(run "${ecs[@]}" -e "ECS_SECRETS_PATH=$path" "$app" sh -c 'printf %s "$TRICKY"' 2>&1)
  expect "a value with quotes, \$, backticks and a newline arrives intact" "$tricky" "$out"
  # --init (ECS initProcessEnabled): docker-init is PID 1, CMD its child.
  out=$(run --init "${ecs[@]}" -e "ECS_SECRETS_PATH=$path" "$app" sh -c 'echo "ppid=$PPID A=$A"' 2>&1)
  expect "--init: CMD runs under docker-init with the secrets" "ppid=1 A=alpha" "$out"
  # Exit codes come back to docker run.
  set +e
  run "${ecs[@]}" -e "ECS_SECRETS_PATH=$path" "$app" sh -c 'exit 7' >/dev/null 2>&1
  rc=$?
  set -e
  expect "CMD's exit code is docker run's" 7 "$rc"
  # Fail closed: a required secret is missing, CMD never starts, one error line.
  set +e
  out=$(run "${ecs[@]}" -e "ECS_SECRETS_PATH=$path" --entrypoint ecs-secrets-exec "$app" \
    --require MISSING -- sh -c 'echo STARTED' 2>&1)
  rc=$?
  set -e
  if [ "$rc" -ne 0 ] && [ "${out#*STARTED}" = "$out" ] && [ "${out#ecs-secrets: error:}" != "$out" ]; then
    ok "fail closed: a --require'd secret missing exits $rc, CMD not started"
  else
    fail "fail closed: a --require'd secret missing" "exit $rc" "$out"
  fi
  # The env form in a shell image, under eval.
  out=$(run "${ecs[@]}" -e "ECS_SECRETS_PATH=$path" --entrypoint /bin/sh "$app" \
    -c 'vars=$(ecs-secrets-env) || exit 1; eval "$vars"; echo "A=$A"; printf %s "$TRICKY"' 2>&1)
  expect "env form: vars=\$(ecs-secrets-env) && eval" "A=alpha
$tricky" "$out"
  set +e
  out=$(run "${ecs[@]}" -e "ECS_SECRETS_PATH=$path" --entrypoint /bin/sh "$app" \
    -c 'vars=$(ecs-secrets-env --require MISSING) || exit 3; eval "$vars"; echo STARTED' 2>&1)
  rc=$?
  set -e
  expect "env form fails closed: the shell sees the failure" "3" "$rc" "$out"

  # docker stop: SIGTERM reaches the application (its trap prints and exits 42), and its exit
  # code is the container's. Through exec (CMD is PID 1), under --init, and through --refresh
  # (ecs-secrets supervises and forwards).
  app_cmd='trap "echo got-TERM; exit 42" TERM; echo ready; while :; do sleep 1; done'
  stop_case() { # name [docker run options…] -- [entrypoint args…]
    local name=$1 c="ecs-secrets-engine-test-$arch-$RANDOM"
    shift
    local opts=() args=()
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    args=("$@")
    containers+=("$c")
    "$docker" run -d --name "$c" "${plat[@]}" "${ecs[@]}" -e "ECS_SECRETS_PATH=$path" "${opts[@]}" \
      "$app" "${args[@]}" >/dev/null
    local logs=""
    for _ in $(seq 300); do
      logs=$("$docker" logs "$c" 2>&1)
      [ "${logs#*ready}" != "$logs" ] && break
      sleep 0.1
    done
    "$docker" stop -t 30 "$c" >/dev/null
    local code
    code=$("$docker" inspect -f '{{.State.ExitCode}}' "$c")
    logs=$("$docker" logs "$c" 2>&1)
    "$docker" rm -f "$c" >/dev/null
    if [ "$code" = 42 ] && [ "${logs#*got-TERM}" != "$logs" ]; then
      ok "docker stop $name: the app got SIGTERM, exit 42 is the container's"
    else
      fail "docker stop $name" "exit code $code" "logs: $logs"
    fi
  }
  stop_case "through exec (app is PID 1)" -- sh -c "$app_cmd"
  stop_case "under --init" --init -- sh -c "$app_cmd"
  stop_case "through --refresh (ecs-secrets is PID 1)" --entrypoint ecs-secrets-exec -- \
    --refresh 300 --files /run/secrets -- sh -c "$app_cmd"
  stop_case "through --refresh under --init" --init --entrypoint ecs-secrets-exec -- \
    --refresh 300 --files /run/secrets -- sh -c "$app_cmd"
  "$docker" rmi -f "$app" >/dev/null
done

echo "engine (${arches[*]}): $passed passed, $failed failed"
[ "$failed" -eq 0 ]
