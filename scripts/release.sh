#!/usr/bin/env bash
# A release, from a clean checkout, into dist/ (root, Debian bookworm; installs what it needs):
#
#   ecs-secrets-VERSION-x86_64-linux        static executables
#   ecs-secrets-VERSION-aarch64-linux
#   ecs-secrets-VERSION-ARCH-linux.cdx.json  CycloneDX SBOM of what each binary compiles in
#   ecs-secrets-VERSION-image-amd64.tar     the FROM-scratch image, `docker load`-able
#   ecs-secrets-VERSION-image-arm64.tar       (tags ecs-secrets:VERSION-amd64 / -arm64)
#   ecs-secrets-VERSION-image-oci.tar       both as one multi-architecture OCI archive (an image
#                                           index over the two manifests; ref name VERSION)
#   SHA256SUMS                              `sha256sum -c SHA256SUMS` in dist/
#
# x86_64 is built by the rustup toolchain as every other build here; aarch64 is cross-built by
# Debian's rustc-web with its arm64 standard library and linked by the cross gcc
# (.cargo/config.toml, build.rs). The images are built from those binaries by
# docker/Dockerfile's prebuilt path, so they hold exactly the files in dist/.
# Environment: ECS_SECRETS_ALLOW_DIRTY=1 builds from a modified tree (the commit is then marked
# "-dirty", as --version then says); ECS_SECRETS_SOURCE_URL sets the image's org.opencontainers.image.source label.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

max_size=$((6 * 1024 * 1024))
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# `git diff` (unlike `git status`) never rewrites the index, which build.rs watches.
if [ "$commit" != unknown ] && ! git diff --quiet HEAD --; then
  if [ "${ECS_SECRETS_ALLOW_DIRTY:-}" != 1 ]; then
    echo "release: the work tree has uncommitted changes; commit them (a release names its" >&2
    echo "  commit), or set ECS_SECRETS_ALLOW_DIRTY=1 to build one marked \"$commit-dirty\"." >&2
    exit 1
  fi
  commit="$commit-dirty" # as build.rs marks it
fi
# The SBOMs' timestamp: the commit's, so the same commit gives the same files.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH
source_url=${ECS_SECRETS_SOURCE_URL:-$(git remote get-url origin 2>/dev/null | grep '^https://' || echo unknown)}

# --- tools --------------------------------------------------------------------------------
scripts/engine.sh
dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64; fresh=1; }
missing=()
[ -x /usr/bin/rustc ] || missing+=(rustc-web)
dpkg -s libstd-rust-web-dev:arm64 >/dev/null 2>&1 || missing+=(libstd-rust-web-dev:arm64)
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/libc.a ] || missing+=(libc6-dev-arm64-cross)
command -v file >/dev/null || missing+=(file)
if [ ${#missing[@]} -gt 0 ] || [ -n "${fresh:-}" ]; then
  echo "release: installing ${missing[*]} with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The SBOM tool is CycloneDX's own (cargo-cyclonedx); pinned, so the SBOM's shape is fixed.
# Installed (compiled) while the binaries build; waited for before the first SBOM.
sbom_tool=
if ! cargo cyclonedx --version 2>/dev/null | grep -q ' 0\.5\.9$'; then
  echo "release: installing cargo-cyclonedx 0.5.9 with cargo (log target/cyclonedx-install.log)" >&2
  mkdir -p target
  cargo install --locked --quiet cargo-cyclonedx --version 0.5.9 >target/cyclonedx-install.log 2>&1 &
  sbom_tool=$!
fi

# --- binaries -------------------------------------------------------------------------------
rm -rf dist
mkdir -p dist
ctx=target/release-context
rm -rf "$ctx"
# Both at once (the final LTO step of each is single-threaded). x86_64 in a target directory of
# its own: the two toolchains' host artifacts (build scripts) would otherwise share
# target/release and its lock, and the builds would take turns.
x86_env=(CARGO_TARGET_DIR=target/x86_64-release)
arm_env=(RUSTC=/usr/bin/rustc CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
  AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar)
# The dependencies' source paths, which panic messages name, are written relative to the
# registry ("aws-config-1.13.0/src/…", not "/root/.cargo/registry/src/index…/aws-config-…"): the
# binary does not carry the builder's home directory, and is 29 KB smaller.
cargo fetch --locked >/dev/null
remap() { # triple: a --config adding one --remap-path-prefix per registry source directory
  local flags=() d
  for d in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/; do
    flags+=("\"--remap-path-prefix=${d%/}=\"")
  done
  local IFS=,
  printf 'target.%s.rustflags=[%s]' "$1" "${flags[*]}"
}
echo "release: building x86_64-unknown-linux-gnu and aarch64-unknown-linux-gnu" >&2
env "${x86_env[@]}" cargo build --locked --release --target x86_64-unknown-linux-gnu \
  --config "$(remap x86_64-unknown-linux-gnu)" >target/release-x86_64.log 2>&1 &
x86_build=$!
env "${arm_env[@]}" cargo build --locked --release --target aarch64-unknown-linux-gnu \
  --config "$(remap aarch64-unknown-linux-gnu)"
wait "$x86_build" || {
  echo "release: the x86_64 build failed:" >&2
  cat target/release-x86_64.log >&2
  exit 1
}

if [ -n "$sbom_tool" ]; then
  wait "$sbom_tool" || {
    echo "release: installing cargo-cyclonedx failed:" >&2
    cat target/cyclonedx-install.log >&2
    exit 1
  }
fi

package() { # arch triple docker-arch binary env…
  local arch=$1 triple=$2 darch=$3 bin=$4
  shift 4
  local out="dist/ecs-secrets-$version-$arch-linux"
  cp "$bin" "$out"
  if readelf -d "$out" | grep -q NEEDED; then
    echo "release: $out is not statically linked:" >&2
    readelf -d "$out" >&2
    exit 1
  fi
  local size
  size=$(stat -c %s "$out")
  if [ "$size" -gt "$max_size" ]; then
    echo "release: $out is $size bytes, over the 6 MiB ($max_size) limit" >&2
    exit 1
  fi
  # It runs (aarch64 through qemu-user, registered by engine.sh) and says what it is.
  local said
  said=$("./$out" --version)
  [ "$said" = "ecs-secrets $version ($commit $triple)" ] || {
    echo "release: $out --version printed \"$said\"" >&2
    exit 1
  }
  mkdir -p "$ctx/$darch"
  cp "$out" "$ctx/$darch/ecs-secrets"
  # Relative links: install-links would point them at this dist/ path, which the image lacks.
  ln -s ecs-secrets "$ctx/$darch/ecs-secrets-exec"
  ln -s ecs-secrets "$ctx/$darch/ecs-secrets-env"
  # The SBOM: the dependency graph cargo resolves for this target, normal dependencies only
  # (no dev- or build-dependencies: they are not in the binary).
  env "$@" cargo cyclonedx --quiet --format json --spec-version 1.5 --target "$triple" \
    --no-build-deps --override-filename "ecs-secrets-sbom-$triple" >/dev/null
  mv "ecs-secrets-sbom-$triple.json" "dist/ecs-secrets-$version-$arch-linux.cdx.json"
}
package x86_64 x86_64-unknown-linux-gnu amd64 \
  target/x86_64-release/x86_64-unknown-linux-gnu/release/ecs-secrets "${x86_env[@]}"
package aarch64 aarch64-unknown-linux-gnu arm64 \
  target/aarch64-unknown-linux-gnu/release/ecs-secrets "${arm_env[@]}"

# --- images ---------------------------------------------------------------------------------
# Debian's docker 20.10 client has BuildKit built in; a newer client needs its buildx plugin.
docker=docker
[ -x /usr/bin/docker ] && docker=/usr/bin/docker
for darch in amd64 arm64; do
  tag="ecs-secrets:$version-$darch"
  echo "release: building the image $tag" >&2
  DOCKER_BUILDKIT=1 "$docker" build --quiet -f docker/Dockerfile --platform "linux/$darch" \
    --build-arg BINARIES=prebuilt --build-arg VERSION="$version" \
    --build-arg REVISION="$commit" --build-arg SOURCE="$source_url" -t "$tag" "$ctx" >/dev/null
  "$docker" save -o "dist/ecs-secrets-$version-image-$darch.tar" "$tag"
done

# One OCI archive over both: skopeo converts each image into one OCI layout (shared blobs),
# then an image index over the two manifests, with their platforms, becomes the layout's only
# entry, named VERSION.
layout=target/release-oci
rm -rf "$layout"
for darch in amd64 arm64; do
  skopeo copy --quiet "docker-archive:dist/ecs-secrets-$version-image-$darch.tar" "oci:$layout:$darch"
done
python3 - "$layout" "$version" <<'PY'
import hashlib, json, os, sys
layout, version = sys.argv[1], sys.argv[2]
def blob(digest):
    algo, hex_ = digest.split(":")
    with open(os.path.join(layout, "blobs", algo, hex_), "rb") as f:
        return json.load(f)
index = json.load(open(os.path.join(layout, "index.json")))
manifests = []
for m in sorted(index["manifests"], key=lambda m: m["annotations"]["org.opencontainers.image.ref.name"]):
    config = blob(blob(m["digest"])["config"]["digest"])
    manifests.append({
        "mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"],
        "platform": {"architecture": config["architecture"], "os": config["os"]},
    })
assert [m["platform"]["architecture"] for m in manifests] == ["amd64", "arm64"], manifests
data = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": manifests}, separators=(",", ":")).encode()
digest = hashlib.sha256(data).hexdigest()
with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
    f.write(data)
json.dump({"schemaVersion": 2, "manifests": [{
    "mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + digest,
    "size": len(data), "annotations": {"org.opencontainers.image.ref.name": version}}]},
    open(os.path.join(layout, "index.json"), "w"), separators=(",", ":"))
PY
oci="dist/ecs-secrets-$version-image-oci.tar"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$layout" -cf "$oci" .
# Read it back: both platforms resolve, and the arm64 one loads into the engine and runs.
skopeo inspect --raw "oci-archive:$oci:$version" | python3 -c '
import json, sys
i = json.load(sys.stdin)
assert [m["platform"]["architecture"] for m in i["manifests"]] == ["amd64", "arm64"], i'
for darch in amd64 arm64; do
  check=$(mktemp -d)
  skopeo copy --quiet --override-os linux --override-arch "$darch" "oci-archive:$oci:$version" \
    "docker-archive:$check/image.tar:ecs-secrets:oci-check-$darch"
  "$docker" load -q -i "$check/image.tar" >/dev/null
  rm -rf "$check"
  said=$("$docker" run --rm --network none --platform "linux/$darch" "ecs-secrets:oci-check-$darch" ecs-secrets --version)
  "$docker" rmi -f "ecs-secrets:oci-check-$darch" >/dev/null
  case "$said" in
    "ecs-secrets $version ($commit "*) ;;
    *) echo "release: the OCI archive's $darch image printed \"$said\"" >&2; exit 1 ;;
  esac
done

(cd dist && sha256sum -- * >SHA256SUMS && sha256sum -c --quiet SHA256SUMS)
echo "release: dist/ (ecs-secrets $version, commit $commit)" >&2
ls -l dist >&2
