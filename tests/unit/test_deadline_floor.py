"""LatencyFloor: the minimum of a model's last N successful answers."""

from __future__ import annotations

from api_gateway.deadline_floor import LatencyFloor


def test_floor_is_the_minimum_of_a_sliding_window() -> None:
    f = LatencyFloor(window=3)
    assert f.floor_s("m") is None
    for s in (0.05, 0.02, 0.04):
        f.observe("m", s)
    assert f.floor_s("m") == 0.02
    f.observe("m", 0.06)  # drops 0.05: still 0.02
    assert f.floor_s("m") == 0.02
    f.observe("m", 0.07)  # drops 0.02: min of 0.04, 0.06, 0.07
    assert f.floor_s("m") == 0.04
    f.observe("m", 0.01)
    assert f.floor_s("m") == 0.01
    assert f.floor_s("other") is None


def test_service_rate_counts_answers_in_the_last_window() -> None:
    from api_gateway.deadline_floor import ServiceRate, estimated_wait_s

    now = [0.0]
    rate = ServiceRate(window_s=1.0, min_answers=4, clock=lambda: now[0], min_span_s=0.5)
    for i in range(3):
        now[0] = i * 0.01
        rate.observe("m")
    assert rate.rate_per_s("m") is None  # fewer than min_answers
    for i in range(7):
        now[0] = 0.03 + i * 0.01
        rate.observe("m")
    assert rate.rate_per_s("m") is None  # enough answers, but within 0.1 s: warming up
    for i in range(90):
        now[0] = 0.10 + i * 0.01
        rate.observe("m")
    assert rate.rate_per_s("m") == 100.0  # 100 answers within the last second
    now[0] = 2.0  # a stall: none in the last second, the 100 answers of the last two remain
    assert rate.rate_per_s("m") == 50.0
    now[0] = 5.0  # a longer stall: the ten-second memory still knows the capacity
    assert rate.rate_per_s("m") == 100 / 5.0
    now[0] = 11.0  # nothing for ten seconds: no estimate
    assert rate.rate_per_s("m") is None
    assert estimated_wait_s(19, 100.0) == 0.2
    assert estimated_wait_s(19, None) == 0.0
