"""The race runs end to end (`python -m bench.race --smoke`): machinery, not timing.

Smoke = a fresh store with iris, the 4 MiB echo and the HistGradientBoosting model, the
in-process sweep, then two repeats in shuffled order of the RunnerFleet cluster (over gRPC, and
over HTTP with KServe v2 JSON: `rf-http`), the codec-path bare server and the zero-copy echo,
each loaded closed loop, open loop (Poisson), at 8 rows per request and with a two-model mix,
with distinct inputs whose every answer is checked. Asserts that every system answered every
request right, that the JSON, the report (with its HTTP section) and the plots are written, and
that the report keeps the sections other tools added between markers (the chaos benchmark's
among them).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

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

    text = md.read_text()
    for heading in ("## Targets", "## Resources", "open loop", "## Over HTTP/JSON"):
        assert heading in text
    assert kept in text
    assert chaos in text
    assert "# old report" not in text
    for name in ("race_throughput_vs_concurrency.png", "race_latency_vs_offered_load.png"):
        assert (out_dir / name).stat().st_size > 0
