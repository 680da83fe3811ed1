"""Channel options shared by every client of a RunnerFleet process that restarts in place.

gRPC's default reconnect backoff starts at 1 s and grows to 120 s, so a channel that saw a
few refused connections while its server restarted can sit in TRANSIENT_FAILURE, failing
every call at once with the stale "connection refused", for seconds after the server is
back. Both the gateway's channels to its workers (``api_gateway/pool.py``) and
``runnerfleet.client``'s channels to gateways, which fail over between addresses only as
long as one of them reconnects, retry a refused connection after 100 ms and never wait more
than 1 s between attempts (on loopback or a cluster network, one connection attempt a second
to a server that is down costs nothing).
"""

from __future__ import annotations

__all__ = ["FAST_RECONNECT", "MAX_RECONNECT_BACKOFF_MS"]

MAX_RECONNECT_BACKOFF_MS = 1000  # the longest a channel waits between connection attempts

FAST_RECONNECT: list[tuple[str, int]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
]
