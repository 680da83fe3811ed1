"""Outlier ejection policy (api_gateway/outlier.py) driven by a fake clock."""

from __future__ import annotations

from api_gateway.outlier import OutlierDetector, OutlierPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def _detector(
    **policy: float,
) -> tuple[OutlierDetector, FakeClock, list[tuple[str, str, float]], list[str]]:
    clock = FakeClock()
    ejections: list[tuple[str, str, float]] = []
    returns: list[str] = []
    detector = OutlierDetector(
        OutlierPolicy(**policy),  # type: ignore[arg-type]
        clock,
        on_eject=lambda a, r, d: ejections.append((a, r, d)),
        on_return=returns.append,
    )
    detector.set_healthy(["a", "b", "c", "d"])
    return detector, clock, ejections, returns


def test_consecutive_faults_eject_and_a_success_resets_the_streak() -> None:
    detector, _clock, ejections, _ = _detector(consecutive_faults=3)
    detector.on_fault("a")
    detector.on_fault("a")
    detector.on_success("a", 0.01)  # streak broken
    detector.on_fault("a")
    detector.on_fault("a")
    assert not detector.is_ejected("a") and ejections == []
    detector.on_fault("a")
    assert detector.is_ejected("a")
    assert ejections == [("a", "consecutive_errors", 1.0)]


def test_ejection_ends_after_its_time_then_probation_re_ejects_longer() -> None:
    detector, clock, ejections, returns = _detector(consecutive_faults=2, base_ejection_s=1.0)
    detector.on_fault("a")
    detector.on_fault("a")
    clock.now_s += 0.99
    assert detector.is_ejected("a")
    clock.now_s += 0.02
    assert not detector.is_ejected("a") and returns == ["a"]
    detector.on_fault("a")  # on probation: one fault is enough
    assert detector.is_ejected("a")
    assert [d for _, _, d in ejections] == [1.0, 2.0]
    clock.now_s += 2.01
    assert not detector.is_ejected("a")
    detector.on_success("a", 0.01)  # probation passed
    detector.on_fault("a")
    assert not detector.is_ejected("a")


def test_ejection_time_is_capped_and_forgotten_after_good_behaviour() -> None:
    detector, clock, ejections, _ = _detector(
        consecutive_faults=1, base_ejection_s=1.0, max_ejection_s=3.0
    )
    for _ in range(5):
        detector.on_fault("a")
        clock.now_s += 10.0
        assert not detector.is_ejected("a")
    assert [d for _, _, d in ejections] == [1.0, 2.0, 3.0, 3.0, 3.0]
    detector.on_success("a", 0.01)  # ends probation
    clock.now_s += 3.5  # longer than max_ejection_s since the return
    detector.on_success("a", 0.01)
    detector.on_fault("a")
    assert ejections[-1][2] == 1.0


def test_latency_outliers_are_a_multiple_of_the_workers_own_recent_latency() -> None:
    detector, _clock, ejections, _ = _detector(
        consecutive_slow=2, latency_multiple=5.0, latency_floor_s=0.001
    )
    for _ in range(20):
        detector.on_success("a", 0.010)
    assert abs(detector.slow_threshold_s("a") - 0.05) < 1e-3
    detector.on_success("a", 0.040)  # slower, but under 5x: fine
    detector.on_success("a", 0.2)
    assert ejections == []
    detector.on_abandoned("a", 0.3)  # a hedge answered first after 300 ms
    assert ejections == [("a", "latency", 1.0)]


def test_latency_floor_keeps_fast_models_from_flapping() -> None:
    detector, _clock, ejections, _ = _detector(
        consecutive_slow=1, latency_multiple=5.0, latency_floor_s=0.05
    )
    for _ in range(20):
        detector.on_success("a", 0.0002)
    detector.on_success("a", 0.004)  # 20x the mean, but under the floor
    detector.on_abandoned("a", 0.01)
    assert ejections == []


def test_max_ejection_percent_and_never_the_last_worker() -> None:
    detector, _clock, ejections, _ = _detector(consecutive_faults=1, max_ejection_percent=50.0)
    for address in "abcd":
        detector.on_fault(address)
    assert sorted(detector.ejected()) == ["a", "b"]  # 50% of 4
    detector.set_healthy(["x"])
    detector.on_fault("x")
    assert not detector.is_ejected("x")  # the only healthy worker stays in
    two, _, _, _ = _detector(consecutive_faults=1, max_ejection_percent=100.0)
    two.set_healthy(["a", "b"])
    two.on_fault("a")
    two.on_fault("b")
    assert two.ejected() == ["a"]  # 100% still leaves one
    assert len(ejections) == 2


def test_streak_kept_while_no_room_then_ejected_when_room_appears() -> None:
    detector, clock, _, _ = _detector(consecutive_faults=2, max_ejection_percent=50.0)
    detector.set_healthy(["a", "b"])
    detector.on_fault("a")
    detector.on_fault("a")
    detector.on_fault("b")
    detector.on_fault("b")
    assert detector.ejected() == ["a"]
    clock.now_s += 1.5  # a returns
    assert detector.ejected() == []
    detector.on_fault("b")  # b's streak was kept
    assert detector.ejected() == ["b"]


def test_forget_drops_a_departed_worker() -> None:
    detector, _clock, _, _ = _detector(consecutive_faults=1)
    detector.on_fault("a")
    assert detector.is_ejected("a")
    detector.forget("a")
    assert not detector.is_ejected("a")
