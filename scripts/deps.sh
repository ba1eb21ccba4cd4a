#!/usr/bin/env bash
# Install what the tests and the quickstart need on a Debian machine, idempotently:
# moto's server (the AWS emulator), python-dotenv and credstash (readers/peers the tests and
# benchmarks compare against), AWS's linters (cfn-lint, parliament; boto3 for botocore's
# validation of the example task definitions), the shells the eval round trip is checked in, and for the
# container tests busybox-static, util-linux (unshare, setpriv), mount and openssl.
set -euo pipefail

missing=()
command -v dash >/dev/null || missing+=(dash)
command -v zsh >/dev/null || missing+=(zsh)
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v unshare >/dev/null || missing+=(util-linux)
command -v setpriv >/dev/null || missing+=(util-linux)
command -v mount >/dev/null || missing+=(mount)
command -v openssl >/dev/null || missing+=(openssl)
command -v file >/dev/null || missing+=(file)
# The generated completions and man page are checked by the shells and man that read them.
command -v fish >/dev/null || missing+=(fish)
command -v man >/dev/null || missing+=(man-db)
command -v groff >/dev/null || missing+=(groff-base)
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]} with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v moto_server >/dev/null || ! python3 -c 'import moto, dotenv, flask' 2>/dev/null; then
  echo "deps: installing moto[server] and python-dotenv with pip" >&2
  python3 -m pip install -q --disable-pip-version-check 'moto[server]' python-dotenv
fi
if ! command -v cfn-lint >/dev/null || ! command -v parliament >/dev/null \
  || ! python3 -c 'import boto3' 2>/dev/null; then
  echo "deps: installing cfn-lint, parliament and boto3 with pip" >&2
  python3 -m pip install -q --disable-pip-version-check cfn-lint parliament boto3
fi
if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "deps: installing PyYAML with pip (tests/templates.rs parses the yaml filter's output)" >&2
  python3 -m pip install -q --disable-pip-version-check pyyaml
fi
if ! command -v credstash >/dev/null; then
  echo "deps: installing credstash with pip (tests/import.rs writes its tables with it)" >&2
  python3 -m pip install -q --disable-pip-version-check credstash
fi
# pyenv keeps console scripts behind shims that need a rehash after an install.
command -v pyenv >/dev/null && pyenv rehash || true
command -v moto_server >/dev/null || { echo "deps: moto_server is still not on PATH" >&2; exit 1; }
for tool in cfn-lint parliament; do
  command -v "$tool" >/dev/null || { echo "deps: $tool is still not on PATH" >&2; exit 1; }
done
