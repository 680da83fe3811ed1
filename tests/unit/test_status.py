"""The one retry rule (protos/errors.py) and the ErrorCode <-> status mapping (protos/status.py)."""

from __future__ import annotations

import grpc
import pytest

from protos.errors import ErrorCode, is_retryable
from protos.status import RETRYABLE_CODES, code_from_status_number, status_number


def test_only_unavailable_or_a_broken_call_is_retried() -> None:
    assert [c for c in ErrorCode if is_retryable(c)] == [ErrorCode.UNAVAILABLE]
    assert all(is_retryable(c, transport=True) for c in ErrorCode)
    assert RETRYABLE_CODES == {grpc.StatusCode.UNAVAILABLE}


@pytest.mark.parametrize("code", [None, *ErrorCode])
def test_status_numbers_round_trip(code: ErrorCode | None) -> None:
    assert code_from_status_number(status_number(code)) is code


def test_status_numbers_follow_grpc_and_unknown_ones_are_internal() -> None:
    assert status_number(ErrorCode.NOT_FOUND) == grpc.StatusCode.NOT_FOUND.value[0]
    assert code_from_status_number(grpc.StatusCode.UNKNOWN.value[0]) is ErrorCode.INTERNAL
    assert code_from_status_number(999) is ErrorCode.INTERNAL
