"""The only mappings of RunnerFleet's ErrorCode: to and from gRPC status codes, and to HTTP.

The HTTP table follows Triton's HTTP front end (404 unknown model, 400 client errors, 503
UNAVAILABLE) and Google's gRPC/HTTP mapping where Triton has no case (429 RESOURCE_EXHAUSTED).

Also the one abort decorator every servicer (gateway and worker) wraps its unary rpcs in, so a
RunnerFleetError raised anywhere below becomes its status code and message in one place.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import grpc

from protos.errors import ErrorCode, RunnerFleetError, error_for_code, is_retryable

__all__ = [
    "to_grpc_code",
    "from_grpc_code",
    "error_from_rpc_error",
    "status_number",
    "code_from_status_number",
    "aborts_on_error",
    "to_http_status",
    "RETRYABLE_CODES",
    "HTTP_STATUS",
]

_TO_GRPC: dict[ErrorCode, grpc.StatusCode] = {
    code: getattr(grpc.StatusCode, code.value) for code in ErrorCode
}
_FROM_GRPC: dict[grpc.StatusCode, ErrorCode] = {v: k for k, v in _TO_GRPC.items()}
_BY_NUMBER: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}

# The gRPC face of errors.is_retryable (for clients that see a grpc.StatusCode).
RETRYABLE_CODES: frozenset[grpc.StatusCode] = frozenset(
    _TO_GRPC[code] for code in ErrorCode if is_retryable(code)
)

HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.FAILED_PRECONDITION: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.ALREADY_EXISTS: 409,
    ErrorCode.RESOURCE_EXHAUSTED: 429,
    ErrorCode.CANCELLED: 499,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UNIMPLEMENTED: 501,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.DEADLINE_EXCEEDED: 504,
}

P = ParamSpec("P")
R = TypeVar("R")


def to_grpc_code(error: BaseException) -> grpc.StatusCode:
    """The status code for an exception: its ErrorCode, or INTERNAL for anything unexpected."""
    if isinstance(error, RunnerFleetError):
        return _TO_GRPC[error.code]
    return grpc.StatusCode.INTERNAL


def from_grpc_code(code: grpc.StatusCode) -> ErrorCode:
    """The ErrorCode for a gRPC status (UNKNOWN and others become INTERNAL)."""
    return _FROM_GRPC.get(code, ErrorCode.INTERNAL)


def status_number(code: ErrorCode | None) -> int:
    """The numeric gRPC status for ``code`` (None = OK = 0), as the internal proto carries it."""
    return 0 if code is None else int(_TO_GRPC[code].value[0])


def code_from_status_number(number: int) -> ErrorCode | None:
    """The ErrorCode for a numeric gRPC status (0 = OK = None; unknown numbers are INTERNAL)."""
    if number == 0:
        return None
    status = _BY_NUMBER.get(number)
    return ErrorCode.INTERNAL if status is None else from_grpc_code(status)


def error_from_rpc_error(error: grpc.RpcError) -> RunnerFleetError:
    """Turn a failed call's status back into a RunnerFleetError, keeping its message."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    return error_for_code(from_grpc_code(code), details or code.name)


def aborts_on_error(
    method: Callable[P, Awaitable[R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Wrap a unary rpc handler: a RunnerFleetError it raises aborts the call with its code.

    The handler's last positional argument is the ``grpc.aio.ServicerContext`` (as for both
    bound servicer methods ``(request, context)`` and plain ``(self, request, context)``).
    """

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except RunnerFleetError as exc:
            context: Any = args[-1]
            await context.abort(to_grpc_code(exc), exc.message)
            raise  # unreachable: abort raises

    return call


def to_http_status(error: BaseException) -> int:
    """The HTTP status for an exception: by its ErrorCode, 500 for anything unexpected."""
    if isinstance(error, RunnerFleetError):
        return HTTP_STATUS[error.code]
    return 500
