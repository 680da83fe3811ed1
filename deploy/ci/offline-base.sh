#!/usr/bin/env bash
# Builds a Debian bookworm base image with Python 3.11 (python3, python3-venv, pip) from the Debian
# archive with mmdebstrap and `docker import`s it, for machines that reach the package registries
# but no image registry. deploy/Dockerfile takes it through --build-arg BASE_IMAGE=... and
# BUILDER_IMAGE=...; real users keep the default python:3.11-slim-bookworm.
# The host's CA bundle goes into the image, so pip inside the build trusts what the host trusts.
# With RF_BASE_CACHE=FILE the root file system tarball is kept there and reused while younger
# than 7 days (mmdebstrap takes one to three minutes on a busy 2-core machine).
# Usage: deploy/ci/offline-base.sh TAG   (needs root, mmdebstrap and a reachable Docker engine)
set -euo pipefail
tag="${1:?usage: offline-base.sh TAG}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ca=/etc/ssl/certs/ca-certificates.crt
rootfs="$work/rootfs.tar"
cache="${RF_BASE_CACHE:-}"
if [ -n "$cache" ] && [ -s "$cache" ] && [ -n "$(find "$cache" -mtime -7)" ]; then
  rootfs="$cache"
else
  mmdebstrap --quiet --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    ${ca:+--customize-hook="if [ -s $ca ]; then cat $ca > \"\$1$ca\"; fi"} \
    bookworm "$rootfs" http://deb.debian.org/debian
  if [ -n "$cache" ]; then
    mkdir -p "$(dirname "$cache")" && cp "$rootfs" "$cache.tmp" && mv "$cache.tmp" "$cache"
  fi
fi
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  "$rootfs" "$tag" >/dev/null
echo "$tag"
