"""bench/regress.py: both sides measured in every repeat, order alternating, ratios paired."""

from __future__ import annotations

import argparse
import pathlib

from bench.regress import Side, line, measure, verdict


def _point(rps: float) -> dict:
    return {
        "rps": rps, "p50_ms": 1.0, "p99_ms": 2.0, "errors": 0, "mean_batch": 1.0,
        "gateway_cpu_ms_per_req": 0.2, "worker_cpu_ms_per_req": 0.3,
    }  # fmt: skip


def test_sides_alternate_and_each_repeat_gives_its_own_ratio() -> None:
    sides = (Side("base", pathlib.Path("b"), "b0"), Side("new", pathlib.Path("n"), "n0"))
    calls: list[tuple[str, str, int]] = []
    rates = iter([100.0, 90.0, 80.0, 100.0, 50.0, 60.0, 120.0, 60.0])

    def run_point(side: Side, model: str, concurrency: int, a: object, out: str) -> dict:
        calls.append((side.label, model, concurrency))
        return _point(next(rates))

    a = argparse.Namespace(models="iris_clf", concurrency="1,64", repeats=2)
    rows = measure(sides, a, "unused", run_point)
    assert [c[0] for c in calls] == ["base", "new", "new", "base"] * 2
    assert [c[2] for c in calls] == [1, 1, 1, 1, 64, 64, 64, 64]
    # repeat 1: base 100, new 90; repeat 2: new 80, base 100
    assert rows[0]["ratios"] == [0.9, 0.8]
    assert rows[0]["base"]["rps"] == {"median": 100.0, "min": 100.0, "max": 100.0}
    assert rows[1]["ratios"] == [60.0 / 50.0, 120.0 / 60.0]  # new 60 vs base 50, then 120 vs 60
    assert "new/base 0.85 (0.90 0.80)" in line(rows[0])


def test_control_side_rotates_in_and_sets_the_noise_band() -> None:
    sides = (
        Side("base", pathlib.Path("b"), "b0"),
        Side("new", pathlib.Path("n"), "n0"),
        Side("control", pathlib.Path("b"), "b0"),
    )
    calls: list[str] = []
    rates = {"base": iter([100.0, 100.0, 100.0]), "new": iter([95.0, 97.0, 99.0]),
             "control": iter([90.0, 105.0, 110.0])}  # fmt: skip

    def run_point(side: Side, model: str, concurrency: int, a: object, out: str) -> dict:
        calls.append(side.label)
        return _point(next(rates[side.label]))

    a = argparse.Namespace(models="iris_clf", concurrency="16", repeats=3)
    (row,) = measure(sides, a, "unused", run_point)
    assert calls == ["base", "new", "control", "new", "control", "base", "control", "base", "new"]
    assert row["control_ratios"] == [0.9, 1.05, 1.1]
    assert row["noise_band"] == [0.9, 1.1]
    assert row["ratio_median"] == 0.97
    assert row["verdict"] == "within noise"
    assert "control/base (0.90 1.05 1.10): within noise" in line(row)


def test_verdict_is_a_regression_only_below_the_whole_band() -> None:
    assert verdict(0.89, [0.9, 1.0, 1.1]) == "regression"
    assert verdict(0.9, [0.9, 1.0, 1.1]) == "within noise"
    assert verdict(1.2, [0.9, 1.0, 1.1]) == "faster"
