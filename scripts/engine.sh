#!/usr/bin/env bash
# Make this Debian machine able to build and run both architectures' images, idempotently
# (root; CI runs it on a fresh machine): Debian's docker.io, skopeo and qemu-user-static
# installed if absent; binfmt_misc mounted and qemu's aarch64 entry registered (with its F flag,
# so the interpreter is found inside containers too); dockerd started unless one answers.
# dockerd gets no bridge, no iptables and no masquerading: containers run with `--network host`
# (the tests' moto listens on 127.0.0.1) or `--network none`, and nothing is exposed beyond
# loopback. Its log is /tmp/ecs-secrets-dockerd.log.
set -euo pipefail

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker >/dev/null || missing+=(docker.io)
command -v skopeo >/dev/null || missing+=(skopeo)
[ -e /usr/lib/binfmt.d/qemu-aarch64.conf ] || missing+=(qemu-user-static)
if [ ${#missing[@]} -gt 0 ]; then
  echo "engine: installing ${missing[*]} with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
fi

# aarch64 executables through qemu-user.
binfmt=/proc/sys/fs/binfmt_misc
if [ ! -e "$binfmt/register" ]; then
  mount -t binfmt_misc binfmt_misc "$binfmt"
fi
if [ ! -e "$binfmt/qemu-aarch64" ]; then
  grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf | head -n1 >"$binfmt/register"
fi
grep -q '^enabled' "$binfmt/qemu-aarch64" || echo 1 >"$binfmt/qemu-aarch64"
grep -q '^flags: .*F' "$binfmt/qemu-aarch64" || {
  echo "engine: the qemu-aarch64 binfmt entry has no F flag; containers cannot find qemu." >&2
  echo "  Remove it (echo -1 > $binfmt/qemu-aarch64) and run this script again." >&2
  exit 1
}

# A Docker engine.
if ! docker info >/dev/null 2>&1; then
  echo "engine: starting dockerd (no bridge, no iptables; log /tmp/ecs-secrets-dockerd.log)" >&2
  nohup dockerd --bridge=none --iptables=false --ip-masq=false --ip6tables=false \
    >/tmp/ecs-secrets-dockerd.log 2>&1 </dev/null &
  for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || {
    echo "engine: dockerd did not come up; its log:" >&2
    tail -n 30 /tmp/ecs-secrets-dockerd.log >&2
    exit 1
  }
fi
