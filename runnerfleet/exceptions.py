"""``runnerfleet.exceptions``: the errors the SDK raises, under BentoML 1.x's names too.

Every error is a ``protos.errors.RunnerFleetError`` with a transport-neutral code, so the same
exception means the same gRPC status everywhere; ``BentoMLException`` and the other BentoML
names are aliases, so ``except runnerfleet.exceptions.NotFound`` ports unchanged.
"""

from __future__ import annotations

from protos.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    RunnerFleetError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)

__all__ = [
    "RunnerFleetException",
    "BentoMLException",
    "NotFound",
    "InvalidArgument",
    "BadInput",
    "AlreadyExists",
    "FailedPrecondition",
    "StateException",
    "ResourceExhausted",
    "Unavailable",
    "ServiceUnavailable",
    "DeadlineExceeded",
    "Unauthenticated",
    "PermissionDenied",
    "Unimplemented",
    "Internal",
    "InternalServerError",
    "MissingDependencyException",
]

RunnerFleetException = RunnerFleetError
BentoMLException = RunnerFleetError
BadInput = InvalidArgument
StateException = FailedPrecondition
ServiceUnavailable = Unavailable
InternalServerError = Internal


class MissingDependencyException(FailedPrecondition):
    """An optional package (pandas, Pillow) a feature needs is not installed."""
