"""bench/regress.py: both sides measured in every repeat, order alternating, ratios paired."""

from __future__ import annotations

import argparse
import pathlib

from bench.regress import Side, line, measure


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
