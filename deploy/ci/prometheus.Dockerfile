# Prometheus from Debian's package, for machines that reach the Debian archive but no image
# registry (deploy/ci/docker-compose.offline.yml uses it in place of prom/prometheus).
# Build: docker build -f deploy/ci/prometheus.Dockerfile --build-arg BASE_IMAGE=... deploy/ci
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus && chown nobody:nogroup /prometheus
USER nobody
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
