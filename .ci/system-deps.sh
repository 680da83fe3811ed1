#!/usr/bin/env bash
# Debian packages the tests use: prometheus (promtool, a real Prometheus), docker-compose
# (compose file validation), libb64-0d (perf_analyzer), iproute2 (ip netns, tc: the chaos
# partition test). Idempotent; skips what is present.
set -euo pipefail
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
dpkg -s libb64-0d >/dev/null 2>&1 || need+=(libb64-0d)
{ command -v ip && command -v tc; } >/dev/null 2>&1 || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
