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
