"""Container health check: exit 0 when a RunnerFleet process reports SERVING on gRPC health.

Usage: python healthcheck.py [HOST:PORT] [SERVICE]
  HOST:PORT defaults to $RUNNERFLEET_HEALTH_TARGET or 127.0.0.1:8001; SERVICE defaults to ""
  (the whole process, as docs/ARCHITECTURE.md fixes readiness). Exit 1 when the process answers
  anything but SERVING or does not answer within $RUNNERFLEET_HEALTH_TIMEOUT seconds (3).
  TLS (a worker with --tls-cert): $RUNNERFLEET_HEALTH_TLS_CA verifies the server, with
  $RUNNERFLEET_HEALTH_TLS_CERT/_KEY as the client certificate when the port wants mTLS and
  $RUNNERFLEET_HEALTH_TLS_SERVER_NAME as the name to check (default: the target's host).
  Health needs no token, so none is ever given to this script.

The image copies this file to /opt/runnerfleet/healthcheck.py; the Dockerfile's HEALTHCHECK and
the docker-compose healthchecks run it. It imports only grpcio and grpcio-health-checking, so it
starts in well under a second and never loads torch.
"""

from __future__ import annotations

import os
import sys


def check(target: str, service: str = "", timeout: float = 3.0) -> tuple[bool, str]:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with _channel(grpc, target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:  # UNAVAILABLE while starting, DEADLINE_EXCEEDED when stuck
            code = exc.code() if hasattr(exc, "code") else None
            return False, f"{target}: {getattr(code, 'name', 'ERROR')}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, f"{target}: {status}"


def _channel(grpc, target: str):  # type: ignore[no-untyped-def]
    ca = os.environ.get("RUNNERFLEET_HEALTH_TLS_CA")
    if not ca:
        return grpc.insecure_channel(target)
    cert = os.environ.get("RUNNERFLEET_HEALTH_TLS_CERT")
    key = os.environ.get("RUNNERFLEET_HEALTH_TLS_KEY")

    def read(path: str | None) -> bytes | None:
        if not path:
            return None
        with open(path, "rb") as handle:
            return handle.read()

    creds = grpc.ssl_channel_credentials(read(ca), read(key), read(cert))
    name = os.environ.get("RUNNERFLEET_HEALTH_TLS_SERVER_NAME")
    options = [("grpc.ssl_target_name_override", name)] if name else []
    return grpc.secure_channel(target, creds, options=options)


def main(argv: list[str]) -> int:
    target = (
        argv[1] if len(argv) > 1 else os.environ.get("RUNNERFLEET_HEALTH_TARGET", "127.0.0.1:8001")
    )
    service = argv[2] if len(argv) > 2 else ""
    timeout = float(os.environ.get("RUNNERFLEET_HEALTH_TIMEOUT", "3"))
    ok, message = check(target, service, timeout)
    print(message)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
