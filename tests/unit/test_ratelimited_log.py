"""RateLimitedLog writes one line per interval and says how many it held back."""

from __future__ import annotations

import logging

import pytest

from protos.ratelimited_log import RateLimitedLog


def test_one_line_per_interval_then_a_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = RateLimitedLog(logging.getLogger("t.rl"), interval_s=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="t.rl"):
        assert log.warning("bad %s", "a") is True
        assert [log.warning("bad %s", "b") for _ in range(500)] == [False] * 500
        now[0] = 10.0
        assert log.warning("bad %s", "c") is True
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["bad a", "bad c (500 more like it in the last 10 s not logged)"]
