"""The one retry rule (protos/errors.py) and the ErrorCode <-> status mapping (protos/status.py)."""

from __future__ import annotations

import grpc
import pytest

from protos.errors import ErrorCode, is_retryable
from protos.status import RETRYABLE_CODES, code_from_status_number, status_number


def test_only_unavailable_or_a_broken_call_is_retried() -> None:
    assert [c for c in ErrorCode if is_retryable(c)] == [ErrorCode.UNAVAILABLE]
    broken = [c for c in ErrorCode if is_retryable(c, transport=True)]
    assert broken == [ErrorCode.CANCELLED, ErrorCode.UNAVAILABLE]
    assert RETRYABLE_CODES == {grpc.StatusCode.UNAVAILABLE}


def test_a_call_that_failed_on_the_request_is_not_retried() -> None:
    """UNKNOWN (read as INTERNAL) ends a transport-level call when the worker's handler failed
    on this request (e.g. unparseable bytes): the answer, not a reason to try another replica."""
    unknown = code_from_status_number(grpc.StatusCode.UNKNOWN.value[0])
    assert unknown is ErrorCode.INTERNAL
    assert not is_retryable(unknown, transport=True)
    assert not is_retryable(ErrorCode.INVALID_ARGUMENT, transport=True)


def test_shown_cuts_long_names_and_says_how_long() -> None:
    from protos.errors import SHOWN_NAME_CHARS, shown

    assert shown("iris") == "'iris'"
    long = shown("x" * 10_000)
    assert len(long) < SHOWN_NAME_CHARS + 40 and "10000 characters" in long


@pytest.mark.parametrize("code", [None, *ErrorCode])
def test_status_numbers_round_trip(code: ErrorCode | None) -> None:
    assert code_from_status_number(status_number(code)) is code


def test_status_numbers_follow_grpc_and_unknown_ones_are_internal() -> None:
    assert status_number(ErrorCode.NOT_FOUND) == grpc.StatusCode.NOT_FOUND.value[0]
    assert code_from_status_number(grpc.StatusCode.UNKNOWN.value[0]) is ErrorCode.INTERNAL
    assert code_from_status_number(999) is ErrorCode.INTERNAL
