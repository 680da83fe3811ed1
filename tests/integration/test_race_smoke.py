"""The race runs end to end (`python -m bench.race --smoke`): machinery, not timing.

Smoke = a fresh store with iris, the 4 MiB echo and the HistGradientBoosting model, the
in-process sweep, then two repeats in shuffled order of the RunnerFleet cluster (over gRPC, and
over HTTP with KServe v2 JSON: `rf-http`), the codec-path bare server and the zero-copy echo,
each loaded closed loop, open loop (Poisson), at 8 rows per request and with a two-model mix,
with distinct inputs whose every answer is checked. Asserts that every system answered every
request right, that the JSON, the report (with its HTTP section) and the plots are written, and
that the report keeps the sections other tools added between markers (the chaos benchmark's
among them). The report writer's own rules (the RF HTTP ÷ Triton HTTP target, perf_analyzer
rows that failed) are checked on race results built in the test, as `bench/race.py` records them.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from bench import race, race_report
from bench.chaos import SECTION_BEGIN, SECTION_END

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(420)
def test_race_smoke_checks_every_answer_and_writes_the_report(tmp_path: pathlib.Path) -> None:
    out_dir = tmp_path / "results"
    md = tmp_path / "BENCHMARKS.md"
    kept = "<!-- begin:other-tool -->\n## Another tool's rows\n<!-- end:other-tool -->"
    chaos = f"{SECTION_BEGIN}\n## chaos rows\n{SECTION_END}"
    md.write_text(f"# old report\n\n{kept}\n\n{chaos}\n")
    env = {k: v for k, v in os.environ.items() if k != "RUNNERFLEET_HOME"}
    r = subprocess.run(
        [sys.executable, "-m", "bench.race", "--smoke", "--out-dir", str(out_dir)]
        + ["--markdown", str(md), "--seed", "7"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert r.returncode == 0, f"race failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    res = json.loads((out_dir / "race.json").read_text())
    assert [run["repeat"] for run in res["runs"]] == [0, 1]
    assert sorted(res["runs"][0]["order"]) == ["bare", "rf", "rf-http", "zerocopy"]
    for entry in ("rf", "rf-http", "bare", "zerocopy"):
        runs = res["entries"][entry]
        assert len(runs) == 2
        for run in runs:
            assert run["status"] == "ok", (entry, run.get("reason"))
            assert run["cold_start_s"] > 0
            assert all(v is True for v in run["verified"].values()), run["verified"]
            assert run["points"], entry
            for p in run["points"]:
                assert p["requests"] > 0, (entry, p)
                assert (p["wrong"], p["errors"]) == (0, 0), (entry, p)
                assert p["server_rss_mib"] > 0
                assert p["server_cpu_ms_per_req"] is not None
    modes = {(p["mode"], p["rows"], len(p["models"])) for p in res["entries"]["rf"][0]["points"]}
    assert {("closed", 1, 1), ("closed", 8, 1), ("open", 1, 1), ("closed", 1, 2)} <= modes
    # the same cluster over HTTP/JSON: its models (no 4 MiB echo), its worker's batch statistics
    http_points = res["entries"]["rf-http"][0]["points"]
    assert {m for p in http_points for m in p["models"]} == {"iris_clf", "hgb"}
    assert {(p["mode"], p["rows"]) for p in http_points} >= {("closed", 8), ("open", 1)}
    assert all(p["http_resent"] >= 0 for p in http_points)
    assert any(p["mean_batch"] for p in http_points)
    plan = res["plan"]
    assert len(plan["hgb"]["weights_sha256"]) == 64
    assert plan["iris_clf"]["pool_requests"] > 1
    assert res["inprocess"]["memory_bandwidth"]["gib_per_s"] > 0

    summary = res["summary"]
    rf_iris = summary["entries"]["rf"]["points"]["iris_clf|closed|c1|r1"]
    assert rf_iris["repeats"] == 2
    assert rf_iris["rps_min"] <= rf_iris["rps"] <= rf_iris["rps_max"]
    bw = next(t for t in summary["targets"] if t["target"].startswith("4 MiB"))
    assert bw["measured"] is not None
    assert bw["measured"] > 0
    # issue 14's HTTP rows are in the table; no Triton and no c=16 in the smoke run, so they
    # say so, never a ratio
    http_rows = [t for t in summary["targets"] if t["target"].startswith("iris_clf c=16 rf-http")]
    assert [t["target"].split(">= ")[1] for t in http_rows] == [
        "1.2x triton-http (best config)",
        "0.7x rf (its gRPC)",
    ]
    assert all((t["result"], t["measured"]) == ("not measured", None) for t in http_rows)

    text = md.read_text()
    for heading in ("## Targets", "## Resources", "open loop", "## Over HTTP/JSON"):
        assert heading in text
    assert kept in text
    assert chaos in text
    assert "# old report" not in text
    for name in ("race_throughput_vs_concurrency.png", "race_latency_vs_offered_load.png"):
        assert (out_dir / name).stat().st_size > 0


def _ok_run(rps: float, perf_analyzer: list[dict] | None = None) -> dict:
    point = {"mode": "closed", "models": ["iris_clf"], "c": 16, "rows": 1, "rps": rps}
    point.update(p99_ms=9.0, requests=int(rps))
    return {
        "status": "ok",
        "cold_start_s": 1.0,
        "verified": {"iris_clf": True},
        "points": [point],
        "perf_analyzer": perf_analyzer or [],
    }


def test_quick_race_sets_rf_http_beside_triton_http_and_reports_the_ratio_at_c16() -> None:
    quick = race.PROFILES["quick"]
    assert {"rf-http", "triton-d500-i1-http"} <= set(quick.entries)
    one, two = race.ENTRIES["triton-d500-i1-http"], race.ENTRIES["triton-d500-i2-http"]
    assert {**one, "instances": 2} == two  # the same Triton over HTTP, one model instance
    assert race.is_http("triton-d500-i1-http")
    res = {
        "entries": {
            "rf": [_ok_run(1000.0)],
            "rf-http": [_ok_run(1200.0)],
            "triton-d500-i1-http": [_ok_run(800.0)],
            "triton-d500-i2-http": [_ok_run(600.0)],
        }
    }

    targets = race_report.aggregate(res)["targets"]

    (t,) = [t for t in targets if t["target"].endswith("triton-http (best config)")]
    assert t["measured"] == 1200.0 / 800.0  # over Triton HTTP's best configuration
    assert t["result"] == "met"
    assert "triton-d500-i1-http" in t["figures"]
    (g,) = [t for t in targets if t["target"].endswith("rf (its gRPC)")]
    assert g["measured"] == 1.2


def test_failed_perf_analyzer_rows_say_error_and_why_in_the_report_and_the_console() -> None:
    unavailable = {"error": "RuntimeError: perf_analyzer not found; see\nlogs | here"}
    failed = {"model": "iris_clf", "mode": "rate", "value": 1000, "error": "exited 1"}
    measured = {"model": "iris_clf", "mode": "c", "value": 16, "rps": 900.0, "p50_ms": 5.0}
    measured.update(p99_ms=12.5, stable=True)
    res = {
        "meta": {},
        "runs": [],
        "entries": {
            "rf": [_ok_run(1000.0, [unavailable])],
            "bare": [_ok_run(1500.0, [failed, measured])],
        },
    }

    text = race_report.markdown(res, pathlib.Path("."), [])

    section = text.split("## perf_analyzer", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith(("| rf |", "| bare |"))]
    assert "| rf | - | - | error: RuntimeError: perf_analyzer not found; see logs / here |" in (
        " ".join(rows)
    )
    assert "| bare | iris_clf | 1000 req/s Poisson | error: exited 1 |" in " ".join(rows)
    assert "| bare | iris_clf | c=16 | 900 | 5.00 | 12.5 | 1/1 |" in rows
    assert len(rows) == 3
    assert "None" not in section
    assert race_report.pa_line(unavailable) == (
        "error: RuntimeError: perf_analyzer not found; see logs / here"
    )
    assert race_report.pa_line(failed) == "iris_clf 1000 req/s Poisson: error: exited 1"
    assert race_report.pa_line(measured) == "iris_clf c=16: 900 req/s, p99 12.5 ms"
