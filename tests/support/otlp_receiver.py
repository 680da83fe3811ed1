"""A real OTLP/gRPC trace receiver for tests: a ``TraceService.Export`` server on 127.0.0.1:0.

Built from ``opentelemetry-proto`` (never from ``protos``), so processes under test export to
it exactly as to a collector. ``wait_for`` blocks on a condition variable until the received
spans satisfy a predicate (no polling). ``python -m tests.support.otlp_receiver`` runs one
as its own process (prints its port; on stdin EOF prints the span count and exits).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any, NamedTuple

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

__all__ = ["ReceivedSpan", "OtlpReceiver"]


class ReceivedSpan(NamedTuple):
    """One exported span, flattened: ids in hex."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    links: tuple[tuple[str, str], ...]  # (trace_id, span_id)
    status_code: int


def _value(any_value: Any) -> Any:
    field = any_value.WhichOneof("value")
    return getattr(any_value, field) if field else None


class _Service(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(self, request: Any, context: Any) -> Any:
        spans: list[ReceivedSpan] = []
        for resource_spans in request.resource_spans:
            attrs = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            service = str(attrs.get("service.name", ""))
            spans.extend(
                ReceivedSpan(
                    service,
                    s.name,
                    s.trace_id.hex(),
                    s.span_id.hex(),
                    s.parent_span_id.hex(),
                    s.kind,
                    {a.key: _value(a.value) for a in s.attributes},
                    tuple((link.trace_id.hex(), link.span_id.hex()) for link in s.links),
                    s.status.code,
                )
                for scope in resource_spans.scope_spans
                for s in scope.spans
            )
        self._receiver._add(spans)
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpReceiver:
    """Use as ``with OtlpReceiver() as r:``; ``r.endpoint`` is OTEL_EXPORTER_OTLP_ENDPOINT."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._changed = threading.Condition()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Service(self), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _add(self, spans: list[ReceivedSpan]) -> None:
        with self._changed:
            self.spans.extend(spans)
            self._changed.notify_all()

    def wait_for(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout_s: float = 30.0
    ) -> list[ReceivedSpan]:
        """The spans received so far once ``predicate(spans)`` holds; TimeoutError otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self.spans), timeout_s):
                names = sorted({(s.service, s.name) for s in self.spans})
                raise TimeoutError(f"spans never matched within {timeout_s} s; got {names}")
            return list(self.spans)

    def __enter__(self) -> OtlpReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(0)


if __name__ == "__main__":
    # for benchmarks (a process must not fork with a grpc server running): print the port,
    # serve until stdin closes, then print how many spans arrived
    with OtlpReceiver() as receiver:
        print(receiver.port, flush=True)
        sys.stdin.read()
        print(len(receiver.spans), flush=True)
