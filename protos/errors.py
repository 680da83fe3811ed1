"""Transport-neutral errors: every layer raises these; only protos/status.py maps them to gRPC.

Each error carries an ``ErrorCode`` whose names match gRPC's status codes, so the mapping is
one table and domain code (store, batcher, router) never imports grpc.
"""

from __future__ import annotations

import enum

__all__ = [
    "ErrorCode",
    "RunnerFleetError",
    "InvalidArgument",
    "NotFound",
    "AlreadyExists",
    "FailedPrecondition",
    "ResourceExhausted",
    "Unavailable",
    "DeadlineExceeded",
    "Cancelled",
    "Unauthenticated",
    "PermissionDenied",
    "Unimplemented",
    "Internal",
    "error_for_code",
    "is_retryable",
    "shown",
    "SHOWN_NAME_CHARS",
]

# the most characters of a caller-chosen name an error message repeats (see ``shown``)
SHOWN_NAME_CHARS = 64


class ErrorCode(enum.Enum):
    """What went wrong, independent of the transport (names follow gRPC's status codes)."""

    CANCELLED = "CANCELLED"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    INTERNAL = "INTERNAL"
    UNAVAILABLE = "UNAVAILABLE"
    UNAUTHENTICATED = "UNAUTHENTICATED"


class RunnerFleetError(Exception):
    """Base of every error RunnerFleet raises on purpose; ``code`` says which kind."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(RunnerFleetError, ValueError):
    code = ErrorCode.INVALID_ARGUMENT


class NotFound(RunnerFleetError, LookupError):
    code = ErrorCode.NOT_FOUND


class AlreadyExists(RunnerFleetError):
    code = ErrorCode.ALREADY_EXISTS


class FailedPrecondition(RunnerFleetError):
    code = ErrorCode.FAILED_PRECONDITION


class ResourceExhausted(RunnerFleetError):
    code = ErrorCode.RESOURCE_EXHAUSTED


class Unavailable(RunnerFleetError):
    code = ErrorCode.UNAVAILABLE


class DeadlineExceeded(RunnerFleetError, TimeoutError):
    code = ErrorCode.DEADLINE_EXCEEDED


class Cancelled(RunnerFleetError):
    code = ErrorCode.CANCELLED


class Unauthenticated(RunnerFleetError):
    code = ErrorCode.UNAUTHENTICATED


class PermissionDenied(RunnerFleetError):
    code = ErrorCode.PERMISSION_DENIED


class Unimplemented(RunnerFleetError, NotImplementedError):
    code = ErrorCode.UNIMPLEMENTED


class Internal(RunnerFleetError):
    code = ErrorCode.INTERNAL


_BY_CODE: dict[ErrorCode, type[RunnerFleetError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
        Cancelled,
        Unauthenticated,
        PermissionDenied,
        Unimplemented,
        Internal,
    )
}


def error_for_code(code: ErrorCode, message: str) -> RunnerFleetError:
    """The error instance for ``code`` (used by clients turning a status back into an error)."""
    return _BY_CODE.get(code, Internal)(message)


def shown(name: str, limit: int = SHOWN_NAME_CHARS) -> str:
    """``repr(name)``, cut to ``limit`` characters with the full length said.

    The one helper for echoing a caller-chosen name (model, version, method, input) into an
    error message: a 10,000-character name must not make a 10,000-character message (gRPC's
    metadata limit would turn the answer into a different error at random).
    """
    if len(name) <= limit:
        return repr(name)
    return f"{name[:limit]!r}... ({len(name)} characters)"


# Codes after which the same request may go to another replica (inference is idempotent).
_RETRYABLE: frozenset[ErrorCode] = frozenset({ErrorCode.UNAVAILABLE})
# Codes a call that broke as a whole carries (connection refused or reset, the worker gone
# mid-call, the call torn down under it): the worker may never have seen the request.
_TRANSPORT_RETRYABLE: frozenset[ErrorCode] = frozenset({ErrorCode.UNAVAILABLE, ErrorCode.CANCELLED})


def is_retryable(code: ErrorCode, *, transport: bool = False) -> bool:
    """Whether a failed request may be sent again, to another replica.

    The one retry rule of the project: UNAVAILABLE (the replica cannot serve now), or a
    failure of the call as a whole (``transport``: connection refused or reset, the worker
    killed mid-call, the call cancelled under us) where the worker may never have seen the
    request. A transport-level call that ended with any other status (UNKNOWN, which the
    status mapping reads as INTERNAL: the worker's handler failed on *this* request) is the
    request's fault, not the replica's: retrying it only multiplies the damage (issue 10 saw
    one unparseable request cost six worker calls). Everything else (NOT_FOUND,
    INVALID_ARGUMENT, model errors, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED) is the answer.
    """
    if transport:
        return code in _TRANSPORT_RETRYABLE
    return code in _RETRYABLE
