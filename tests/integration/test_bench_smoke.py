"""The benchmark harness runs end to end (`python -m bench.harness --smoke`): no timing asserts.

Smoke = in-process sweep, the bare grpcio hop, a RunnerFleet worker and clusters (gateway + 1
and + 2 workers), iris and the 4 MiB echo, sub-second windows. It checks that the JSON, the
markdown report and the plots are written with the expected keys, and that every system served
the same answers as the in-process model. Output goes to tmp_path, never over real figures.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(170)
def test_bench_smoke_writes_json_table_and_plots(tmp_path: pathlib.Path) -> None:
    out_dir = tmp_path / "results"
    md = tmp_path / "BENCHMARKS.md"
    env = {k: v for k, v in os.environ.items() if k != "RUNNERFLEET_HOME"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.harness",
            "--smoke",
            "--out-dir",
            str(out_dir),
            "--markdown",
            str(md),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert r.returncode == 0, f"harness failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert "Targets" in r.stdout  # the targets table is printed

    res = json.loads((out_dir / "latest.json").read_text())
    assert {"meta", "inprocess", "systems", "targets", "plan"} <= set(res)
    meta = res["meta"]
    assert meta["profile"] == "smoke"
    assert {"date", "machine", "versions", "settings", "wall_s"} <= set(meta)
    assert {"cpu", "cores", "python"} <= set(meta["machine"])

    assert res["inprocess"]["models"]["iris_clf"]["best"]["rows_per_s"] > 0
    for system in ("bare", "worker", "cluster1", "cluster2"):
        entry = res["systems"][system]
        assert entry["status"] == "ok", (system, entry.get("reason"))
        iris = entry["models"]["iris_clf"]
        assert iris["verified"] is True, (system, iris)
        points = iris["loadgen"]
        assert [p["concurrency"] for p in points] == [1, 4]
        for p in points:
            assert {"rps", "p50_ms", "p99_ms", "mean_batch", "requests", "errors"} <= set(p)
            assert p["requests"] > 0
    for system in ("bare", "worker", "cluster1"):
        echo = res["systems"][system]["models"]["echo"]
        assert echo["verified"] is True, (system, echo)
        assert echo["loadgen"][0]["mib_per_s"] > 0
    http = res["systems"]["cluster1_http"]  # the gateway again, over HTTP/REST v2
    assert http["status"] == "ok", http.get("reason")
    assert http["models"]["iris_clf"]["verified"] is True
    assert [p["concurrency"] for p in http["models"]["iris_clf"]["loadgen"]] == [4]
    assert http["models"]["iris_clf"]["loadgen"][0]["requests"] > 0
    # Peers are not part of the smoke run: their targets say n/a, never a fake ratio.
    assert "mlserver" not in res["systems"]
    assert "triton" not in res["systems"]
    ids = {t["id"] for t in res["targets"]}
    assert {
        "iris_c16_triton",
        "iris_c64_mlserver",
        "iris_c1_p50",
        "heavy_c64_triton",
        "heavy_c64_inproc",
        "echo_bandwidth",
        "http_c16_triton",
        "http_c16_grpc",
    } <= ids
    for t in res["targets"]:
        assert {"target", "required", "met"} <= set(t)
        if t["id"] == "iris_c1_p50":
            assert t["met"] is None
    assert next(t for t in res["targets"] if t["id"] == "echo_bandwidth")["met"] in (True, False)

    text = md.read_text()
    for heading in (
        "# RunnerFleet benchmarks",
        "## Targets",
        "## iris",
        "## echo",
        "## In-process sweep",
        "## HTTP/REST v2 beside gRPC",
    ):
        assert heading in text
    assert "| target | measured | required | result | figures |" in text
    for png in ("throughput_vs_concurrency.png", "p99_vs_throughput.png"):
        data = (out_dir / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({os.path.relpath(out_dir / png, md.parent)})" in text


def _run_bench(module: str, *args: str, timeout_s: float = 150) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RUNNERFLEET_HOME"}
    r = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert r.returncode == 0, f"{module} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.mark.timeout(170)
def test_worker_bench_smoke_loads_a_worker_with_batching_on_and_off(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "worker_bench.json"
    r = _run_bench(
        "bench.worker_bench", "--models", "iris_clf", "--concurrency", "2", "--duration", "0.3",
        "--warmup", "0.1", "--inprocess-s", "0.1", "--out", str(out),
    )  # fmt: skip
    iris = json.loads(out.read_text())["models"]["iris_clf"]
    for label in ("batching", "disabled"):
        (point,) = iris[label]
        assert point["concurrency"] == 2
        assert point["requests"] > 0
        assert point["errors"] == 0
    assert iris["inprocess_rows_per_s"]["64"] > 0
    assert "| iris_clf | batching | 2 |" in r.stdout


@pytest.mark.timeout(170)
def test_worker_ab_smoke_reports_each_variants_worker_cpu(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "worker_ab.json"
    _run_bench(
        "bench.worker_ab", "--model", "iris_clf", "--concurrency", "2", "--duration", "0.3",
        "--warmup", "0.1", "--repeats", "1", "--variant", "A:",
        "--variant", "B:RUNNERFLEET_THREADS=1", "--json", str(out),
    )  # fmt: skip
    (row,) = json.loads(out.read_text())
    assert sorted(row["points"]) == ["A", "B"]
    for point in row["points"].values():
        assert point["requests"] > 0
        assert point["errors"] == 0
        # the worker leads its own process group, so its CPU is its own, never the bench's
        assert point["server_cpu_ms_per_req"] > 0
