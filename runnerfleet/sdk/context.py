"""``runnerfleet.Context``: request metadata in, response metadata and status out, shared state.

An API function that declares a parameter annotated ``Context`` (or named ``ctx`` / ``context``)
receives one per request, as in BentoML 1.x. On the gRPC path ``ctx.request.headers`` holds the
request's string parameters (Open Inference Protocol requests carry their metadata there);
``ctx.response.headers`` become response parameters, and a ``ctx.response.status_code`` of 400
or more turns the answer into the matching error. ``ctx.state`` is the dict the service's
``on_startup`` hooks filled, shared by every request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from protos.errors import (
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    RunnerFleetError,
    Unauthenticated,
    Unavailable,
)

__all__ = ["Context", "RequestContext", "ResponseContext", "error_for_status"]

_STATUS_ERRORS: dict[int, type[RunnerFleetError]] = {
    400: InvalidArgument,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: FailedPrecondition,
    412: FailedPrecondition,
    422: InvalidArgument,
    429: ResourceExhausted,
    503: Unavailable,
}


@dataclasses.dataclass
class RequestContext:
    """What came with the request: ``headers`` (string metadata) and all ``parameters``."""

    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ResponseContext:
    """What the API sets on its answer: ``headers``, ``status_code`` (200 = OK), ``cookies``."""

    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    status_code: int = 200
    cookies: list[Any] = dataclasses.field(default_factory=list)


class Context:
    """One request's context (``request``, ``response``) and the service-wide ``state``."""

    def __init__(
        self,
        parameters: Mapping[str, Any] | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        params = dict(parameters or {})
        headers = {k: v for k, v in params.items() if isinstance(v, str)}
        self.request = RequestContext(headers=headers, parameters=params)
        self.response = ResponseContext()
        self.state: dict[str, Any] = {} if state is None else state

    def __repr__(self) -> str:
        return f"Context(request={self.request}, response={self.response})"


def error_for_status(status_code: int, api: str) -> RunnerFleetError | None:
    """The error an API's ``ctx.response.status_code`` stands for (None below 400)."""
    if status_code < 400:
        return None
    kind = _STATUS_ERRORS.get(status_code, Internal if status_code >= 500 else InvalidArgument)
    return kind(f"API {api} answered status {status_code}")
