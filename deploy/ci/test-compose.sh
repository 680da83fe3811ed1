#!/usr/bin/env bash
# `make test-compose`: build the image and run the docker-compose cluster for real, then
# tests/deploy/test_compose_docker.py checks it (steps 1-7 of deploy/README.md#tests).
#  - Docker: installs Debian's docker.io when missing; uses a running engine when one answers,
#    else starts its own dockerd (data root, exec root and socket under a temp folder) and stops
#    that one, by its PID, at the end. An engine it did not start is never stopped.
#  - Images: the slim Python base when it can be pulled, else one built offline from the Debian
#    archive (deploy/ci/offline-base.sh); Prometheus likewise (deploy/ci/prometheus.Dockerfile,
#    through deploy/ci/docker-compose.offline.yml). pip's local sources on this machine are
#    served to the build over loopback (deploy/ci/pip_sources.py); builds use --network host.
#  - Timings (build, cached rebuild, image size, cold starts) are printed and appended to
#    $RF_TIMINGS when set.
# Usage: bash deploy/ci/test-compose.sh [pytest args]   (root; VENV=.venv by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
work="$(mktemp -d /tmp/rf-compose.XXXXXX)"
dockerd_pid="" sources_pid=""
log() { printf '[test-compose %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

cleanup() {
  set +e
  if [ -n "$sources_pid" ]; then kill "$sources_pid" 2>/dev/null; wait "$sources_pid" 2>/dev/null; fi
  if [ -n "$dockerd_pid" ]; then
    log "stopping the dockerd this script started (pid $dockerd_pid)"
    kill -TERM "$dockerd_pid" 2>/dev/null
    for _ in $(seq 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$dockerd_pid" 2>/dev/null && kill -KILL "$dockerd_pid"
    # what the engine left mounted under its folders (e.g. exec/netns/default), innermost first
    awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r \
      | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  fi
  rm -rf "$work" 2>/dev/null
}
trap cleanup EXIT

# ------------------------------------------------------------------ engine
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  log "installing docker.io"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
compose=()
if docker compose version >/dev/null 2>&1; then compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then compose=(docker-compose)
else
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
  compose=(docker-compose)
fi
if ! docker info >/dev/null 2>&1; then
  mkdir -p "$work/data" "$work/exec"
  export DOCKER_HOST="unix://$work/docker.sock"
  log "no engine answers: starting dockerd (socket $work/docker.sock)"
  dockerd --data-root "$work/data" --exec-root "$work/exec" -H "$DOCKER_HOST" \
    --pidfile "$work/docker.pid" >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { tail -20 "$work/dockerd.log"; exit 1; }
fi

# ------------------------------------------------------------------ base images
# the offline base's root file system is kept for a week (RF_BASE_CACHE= empty: never)
export RF_BASE_CACHE="${RF_BASE_CACHE-${XDG_CACHE_HOME:-$HOME/.cache}/runnerfleet/bookworm-python3-rootfs.tar}"
base="python:3.11-slim-bookworm"
compose_files=(-f deploy/docker-compose.yml)
if ! timeout 60 docker pull -q "$base" >/dev/null 2>&1; then
  base="runnerfleet-base:bookworm"
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    command -v mmdebstrap >/dev/null 2>&1 \
      || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
    log "no registry: building $base with mmdebstrap (root file system cached in ${RF_BASE_CACHE:-no file})"
    t0=$SECONDS; bash deploy/ci/offline-base.sh "$base" >/dev/null
    log "base image built in $((SECONDS - t0)) s"
  fi
fi
export RUNNERFLEET_BASE_IMAGE="$base"
prom_pid=""
if ! timeout 60 docker pull -q prom/prometheus:v2.55.1 >/dev/null 2>&1; then
  compose_files+=(-f deploy/ci/docker-compose.offline.yml)
  log "no registry: building Prometheus from Debian's package (alongside the image)"
  docker build -q --network host --build-arg BASE_IMAGE="$base" \
    -t runnerfleet-prometheus:local -f deploy/ci/prometheus.Dockerfile deploy/ci \
    >"$work/prometheus-build.log" 2>&1 &
  prom_pid=$!
fi

# ------------------------------------------------------------------ package sources, image
"$PY" deploy/ci/pip_sources.py "$work/pip.env" &
sources_pid=$!
for _ in $(seq 100); do [ -s "$work/pip.env" ] && break; sleep 0.1; done
# shellcheck disable=SC1091
. "$work/pip.env"
# the local torch wheel (in find-links) satisfies the pin when the PyTorch index is unreachable
if ! timeout 20 "$PY" -c "import urllib.request as u; u.urlopen('https://download.pytorch.org/whl/cpu/', timeout=15)" 2>/dev/null; then
  export RUNNERFLEET_TORCH_INDEX_URL="$RUNNERFLEET_PIP_INDEX_URL"
fi
build_args=(--build-arg BASE_IMAGE="$base"
  --build-arg PIP_INDEX_URL="$RUNNERFLEET_PIP_INDEX_URL"
  --build-arg PIP_EXTRA_INDEX_URL="$RUNNERFLEET_PIP_EXTRA_INDEX_URL"
  --build-arg PIP_FIND_LINKS="$RUNNERFLEET_PIP_FIND_LINKS"
  --build-arg PIP_TRUSTED_HOST="$RUNNERFLEET_PIP_TRUSTED_HOST"
  --build-arg TORCH_INDEX_URL="${RUNNERFLEET_TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
  --build-arg VERSION="$("$PY" -c "import tomllib; print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")"
  --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
  --build-arg SOURCE="$(git config --get remote.origin.url 2>/dev/null || echo unknown)")
build() { docker build -q --network host -f deploy/Dockerfile -t runnerfleet:latest "${build_args[@]}" . >/dev/null; }
log "building runnerfleet:latest"
t0=$SECONDS; build; first_s=$((SECONDS - t0))
t0=$SECONDS; build; cached_s=$((SECONDS - t0))
size_bytes=$(docker image inspect -f '{{.Size}}' runnerfleet:latest)
kill "$sources_pid" 2>/dev/null; wait "$sources_pid" 2>/dev/null || true; sources_pid=""
if [ -n "$prom_pid" ] && ! wait "$prom_pid"; then cat "$work/prometheus-build.log"; exit 1; fi
export RF_TIMINGS="${RF_TIMINGS:-$work/timings.txt}"
summary="image runnerfleet:latest: $((size_bytes / 1000000)) MB; build ${first_s} s (cached layers as present), rebuild with every layer cached ${cached_s} s"
log "$summary"
echo "$summary" >>"$RF_TIMINGS"

# ------------------------------------------------------------------ the tests
export RF_COMPOSE_CMD="${compose[*]}"
RF_COMPOSE_FILES="$(printf '%s ' "${compose_files[@]}")"
export RF_COMPOSE_FILES
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
rc=0
t0=$SECONDS
"$PY" -m pytest -q -p no:cacheprovider tests/deploy/test_compose_docker.py "$@" || rc=$?
echo "tests: $((SECONDS - t0)) s" >>"$RF_TIMINGS"
log "timings (s):"; cat "$RF_TIMINGS"
exit "$rc"
