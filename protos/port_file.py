"""The port file every RunnerFleet process (and the benchmark's own servers) reports its ports in.

A process started with ``--port 0`` learns its ports only after binding; it writes them, with
its pid, as one JSON object, and whoever started it (``runnerfleet.supervisor``, which also
reads them) waits for the file. Written atomically (a temporary file in the same folder, then a
rename), so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

__all__ = ["write_port_file"]


def write_port_file(
    path: str | os.PathLike[str],
    grpc_port: int,
    metrics_port: int | None = None,
    http_port: int | None = None,
) -> None:
    """Write ``{"grpc_port", "metrics_port", "http_port", "pid"}`` to ``path`` atomically
    (a port that is None is left out)."""
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    ports = {"grpc_port": grpc_port, "metrics_port": metrics_port, "http_port": http_port}
    payload = json.dumps({**{k: v for k, v in ports.items() if v is not None}, "pid": os.getpid()})
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(payload)
    os.replace(tmp, target)
