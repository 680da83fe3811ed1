"""The only mapping between RunnerFleet's ErrorCode and grpc.StatusCode, both ways."""

from __future__ import annotations

import grpc

from protos.errors import ErrorCode, RunnerFleetError, error_for_code

__all__ = ["to_grpc_code", "from_grpc_code", "error_from_rpc_error", "RETRYABLE_CODES"]

_TO_GRPC: dict[ErrorCode, grpc.StatusCode] = {
    code: getattr(grpc.StatusCode, code.value) for code in ErrorCode
}
_FROM_GRPC: dict[grpc.StatusCode, ErrorCode] = {v: k for k, v in _TO_GRPC.items()}

# Codes after which the same request may be sent to another replica (inference is idempotent).
RETRYABLE_CODES: frozenset[grpc.StatusCode] = frozenset({grpc.StatusCode.UNAVAILABLE})


def to_grpc_code(error: BaseException) -> grpc.StatusCode:
    """The status code for an exception: its ErrorCode, or INTERNAL for anything unexpected."""
    if isinstance(error, RunnerFleetError):
        return _TO_GRPC[error.code]
    return grpc.StatusCode.INTERNAL


def from_grpc_code(code: grpc.StatusCode) -> ErrorCode:
    """The ErrorCode for a gRPC status (UNKNOWN and others become INTERNAL)."""
    return _FROM_GRPC.get(code, ErrorCode.INTERNAL)


def error_from_rpc_error(error: grpc.RpcError) -> RunnerFleetError:
    """Turn a failed call's status back into a RunnerFleetError, keeping its message."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    return error_for_code(from_grpc_code(code), details or code.name)
