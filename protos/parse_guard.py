"""Register a generated gRPC servicer so unparseable requests are INVALID_ARGUMENT, quietly.

With the generated ``add_*Servicer_to_server``, grpc deserializes each request itself; bytes
that are not the message make grpc answer UNKNOWN and log a full traceback per request (issue
10: 2,185 tracebacks from 2,000 bad calls, and the gateway read UNKNOWN as a broken call and
retried it). ``add_guarded`` registers the same handlers with a raw-bytes deserializer and
parses inside the handler: a parse failure aborts the call with INVALID_ARGUMENT and one
rate-limited log line (``protos.ratelimited_log.BAD_REQUESTS``), the handler never runs.

A handler marked ``@wire_handler`` takes the request's bytes and returns the response's bytes
itself (no serializers at all): it parses, and refuses unparseable bytes, on its own. The
worker's ModelInfer is one, so a big tensor is not copied by protobuf on the way in or out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc

from protos.ratelimited_log import BAD_REQUESTS

__all__ = ["add_guarded", "guard_handlers", "wire_handler"]

_F = TypeVar("_F", bound=Callable[..., Any])


def wire_handler(method: _F) -> _F:
    """Mark a unary servicer method as taking request bytes and returning response bytes."""
    method.wire_handler = True  # type: ignore[attr-defined]
    return method


class _Recorder:
    """Stands in for the server while a generated ``add_*_to_server`` registers handlers."""

    def __init__(self) -> None:
        self.services: list[tuple[str, dict[str, grpc.RpcMethodHandler]]] = []

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass  # the same handlers also arrive as registered method handlers

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self.services.append((service, handlers))


def _failure_message(method: str, exc: Exception) -> str:
    return f"{method}: the request is not a valid protobuf message ({type(exc).__name__})"


def _guard_unary(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    parse: Callable[[bytes], Any] = handler.request_deserializer
    behavior = handler.unary_unary
    if getattr(behavior, "wire_handler", False):  # it parses and serializes itself
        return grpc.unary_unary_rpc_method_handler(
            behavior, request_deserializer=None, response_serializer=None
        )

    async def call(raw: bytes, context: Any) -> Any:
        try:
            request = parse(raw)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's
            BAD_REQUESTS.warning("refused %s: %d unparseable bytes", method, len(raw))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _failure_message(method, exc))
        return await behavior(request, context)

    return grpc.unary_unary_rpc_method_handler(
        call, request_deserializer=None, response_serializer=handler.response_serializer
    )


def _guard_stream(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    parse: Callable[[bytes], Any] = handler.request_deserializer
    behavior = handler.stream_stream

    async def call(raw_iterator: AsyncIterator[bytes], context: Any) -> AsyncIterator[Any]:
        # an async generator function, as grpc.aio needs for a streaming response. A parse
        # failure ends the request stream; the requests already read are answered, then the
        # call is aborted from this coroutine (aborting inside the stream's reader task raced
        # the answers being written and could leave the call without a status).
        failures: list[str] = []

        async def requests() -> AsyncIterator[Any]:
            async for raw in raw_iterator:
                try:
                    request = parse(raw)
                except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's
                    BAD_REQUESTS.warning("refused %s: %d unparseable bytes", method, len(raw))
                    failures.append(_failure_message(method, exc))
                    return
                yield request

        async for response in behavior(requests(), context):
            yield response
        if failures:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, failures[0])

    return grpc.stream_stream_rpc_method_handler(
        call, request_deserializer=None, response_serializer=handler.response_serializer
    )


def guard_handlers(
    service: str, handlers: dict[str, grpc.RpcMethodHandler]
) -> dict[str, grpc.RpcMethodHandler]:
    """The handlers with parsing moved inside (unary-unary and stream-stream ones)."""
    guarded: dict[str, grpc.RpcMethodHandler] = {}
    for name, handler in handlers.items():
        method = f"{service}/{name}"
        if handler.request_deserializer is None:
            guarded[name] = handler
        elif not handler.request_streaming and not handler.response_streaming:
            guarded[name] = _guard_unary(method, handler)
        elif handler.request_streaming and handler.response_streaming:
            guarded[name] = _guard_stream(method, handler)
        else:
            guarded[name] = handler
    return guarded


def add_guarded(add_to_server: Callable[[Any, Any], None], servicer: Any, server: Any) -> None:
    """``add_to_server(servicer, server)`` (a generated function), with guarded parsing."""
    recorder = _Recorder()
    add_to_server(servicer, recorder)
    for service, handlers in recorder.services:
        guarded = guard_handlers(service, handlers)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, guarded),))
        if hasattr(server, "add_registered_method_handlers"):
            server.add_registered_method_handlers(service, guarded)
