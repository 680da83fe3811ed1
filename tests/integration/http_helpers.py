"""Plain HTTP calls (stdlib http.client) to a process's HTTP/REST v2 port, for the HTTP tests."""

from __future__ import annotations

import dataclasses
import http.client
import json
import ssl
from typing import Any

from tests.support import procs

__all__ = ["HttpReply", "http_port", "call", "infer_json"]


@dataclasses.dataclass
class HttpReply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_port(handle: procs.ProcessHandle) -> int:
    """The HTTP port a started process wrote into its port file."""
    with open(handle.port_file, encoding="utf-8") as f:
        return int(json.load(f)["http_port"])


def call(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    tls: ssl.SSLContext | None = None,
    timeout_s: float = 30.0,
) -> HttpReply:
    """One request on a fresh connection to 127.0.0.1:port."""
    if tls is not None:
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=timeout_s, context=tls
        )
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return HttpReply(response.status, dict(response.getheaders()), response.read())
    finally:
        conn.close()


def infer_json(port: int, model: str, inputs: list[dict[str, Any]], **extra: Any) -> HttpReply:
    """POST a JSON infer body to /v2/models/{model}/infer."""
    headers = {"Content-Type": "application/json", **extra.pop("headers", {})}
    body = json.dumps({"inputs": inputs, **extra}).encode()
    return call(port, "POST", f"/v2/models/{model}/infer", body, headers)
