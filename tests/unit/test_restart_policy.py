"""Restart back-off and crash-loop detection (runnerfleet/restart_policy.py), no processes."""

from __future__ import annotations

from runnerfleet.restart_policy import RestartPolicy, RestartTracker


def test_backoff_doubles_and_is_capped() -> None:
    tracker = RestartTracker(
        RestartPolicy(base_backoff_s=0.5, max_backoff_s=3.0, max_restarts=100, window_s=1.0)
    )
    delays = [tracker.next_delay_s(now_s=10.0 * i, ran_s=1.0) for i in range(6)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert tracker.restarts == 6


def test_a_healthy_run_resets_the_backoff() -> None:
    tracker = RestartTracker(RestartPolicy(base_backoff_s=0.5, healthy_after_s=30.0))
    assert tracker.next_delay_s(0.0, ran_s=1.0) == 0.5
    assert tracker.next_delay_s(1.0, ran_s=1.0) == 1.0
    assert tracker.next_delay_s(100.0, ran_s=99.0) == 0.5


def test_crash_loop_is_n_restarts_within_the_window() -> None:
    tracker = RestartTracker(RestartPolicy(max_restarts=3, window_s=60.0))
    assert all(tracker.next_delay_s(t, ran_s=0.1) is not None for t in (0.0, 1.0, 2.0))
    assert tracker.next_delay_s(3.0, ran_s=0.1) is None  # the fourth crash in a minute
    spaced = RestartTracker(RestartPolicy(max_restarts=3, window_s=60.0))
    assert all(spaced.next_delay_s(t, ran_s=0.1) is not None for t in (0.0, 61.0, 122.0, 183.0))
