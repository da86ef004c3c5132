#!/usr/bin/env bash
# Installs what benches/e2e/run.py and settings.py need: wrk, nginx and HAProxy (Debian
# packages), the pinned oidc-provider (npm, from package-lock.json) and oha (crates.io, into
# the git-ignored .tools/bin: a load generator with a fixed rate and latency correction, which
# wrk lacks). Run as root; idempotent.
set -euo pipefail
cd "$(dirname "$0")"
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx-light)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v openssl >/dev/null || missing+=(openssl)
command -v node >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The packages start their system services on install; the bench runs its own instances.
for service in nginx haproxy; do
  if command -v service >/dev/null; then service "$service" stop >/dev/null 2>&1 || true; fi
done
(cd oidc && npm ci --no-audit --no-fund --silent)
tools="$(cd ../.. && pwd)/.tools"
if [[ ! -x "$tools/bin/oha" ]]; then
  # oha's TLS stack builds C with cmake: the one cargo xtask installs will do.
  PATH="$tools/venv/bin:$PATH" cargo install --locked --quiet --root "$tools" oha@1.16.0
fi
echo "e2e: wrk $(wrk -v 2>&1 | head -n1 | cut -d' ' -f2), $(nginx -v 2>&1 | cut -d' ' -f3), $(haproxy -v | head -n1 | cut -d' ' -f1-3), node $(node --version)"
