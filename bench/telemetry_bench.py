"""Shared memory beside bytes, and tracing on beside off, in one run (issue 14's benchmark rows).

1. Shared memory: one worker and one gateway (echo model, identity over FP32); for 4 MiB and
   64 MiB tensors, the bytes path (`bench/loadgen.py`) and the system shared-memory path
   (`bench/shm_loadgen.py`, inputs and outputs in regions) against the worker and through the
   gateway, alternating; MiB/s of tensor moved per second (requests/s x tensor size) and the
   shm/bytes ratio. Target: at least 3x at 64 MiB.
2. Tracing: two clusters (gateway + 1 worker, iris_clf), one without OTEL_* and one exporting
   OTLP/gRPC to a receiver process with `parentbased_traceidratio` 1% sampling;
   `bench/loadgen.py` at concurrency 16 against each gateway, alternating `--repeats` times
   (ABBA); the throughput ratio of the medians, the ratio of each repeat's neighbouring
   windows (the spread), and the servers' CPU per request (gateway + worker, on/off).
   Target: at most 5% cost. The cost of the hooks with tracing off cannot be isolated within
   one run (off is the baseline): it is a few attribute checks per request.

Usage: `python -m bench.telemetry_bench [--duration-s 5] [--repeats 3] [--json out.json]`.
Run it on a quiet machine only; it prints one line per row.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
from typing import Any

from runnerfleet.local_cluster import LocalCluster

__all__ = ["main"]

_SIZES_MIB = (4, 64)
_FLOATS_PER_MIB = 2**20 // 4


def _seed(home: str) -> None:
    code = "from runnerfleet import demo_models as d; d.save_iris(); d.save_echo()"
    env = {**os.environ, "RUNNERFLEET_HOME": home}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def _point(argv: list[str], out: pathlib.Path) -> dict:
    subprocess.run(argv, check=False)
    result = json.loads(out.read_text())
    if "error" in result:
        raise RuntimeError(f"{argv[2]} failed: {result['error']}")
    return result["points"][0]


def _bytes_load(
    target: str, model: str, datatype: str, shape: str, conc: int, a, out_dir, pgids=()
) -> dict:
    out = pathlib.Path(out_dir) / f"bytes-{model}-{shape}-{conc}-{target.replace(':', '_')}.json"
    argv = [
        sys.executable, "-m", "bench.loadgen", "--target", target, "--model", model,
        "--datatype", datatype, "--shape", shape, "--concurrency", str(conc),
        "--duration", str(a.duration_s), "--warmup", "1", "--out", str(out),
    ]  # fmt: skip
    for pgid in pgids:  # each child runs in its own session: its pid is its process group
        argv += ["--cpu-pgid", str(pgid)]
    return _point(argv, out)


def _shm_load(target: str, shape: str, conc: int, a, out_dir) -> dict:
    out = pathlib.Path(out_dir) / f"shm-{shape}-{conc}-{target.replace(':', '_')}.json"
    argv = [
        sys.executable, "-m", "bench.shm_loadgen", "--target", target, "--model", "echo",
        "--shape", shape, "--concurrency", str(conc), "--duration", str(a.duration_s),
        "--warmup", "1", "--out", str(out),
    ]  # fmt: skip
    return _point(argv, out)


def _median(points: list[dict]) -> dict:
    keys = ["rps", "p50_ms", "p99_ms"]
    if all(p.get("server_cpu_ms_per_req") is not None for p in points):
        keys.append("server_cpu_ms_per_req")
    out = {k: statistics.median(p[k] for p in points) for k in keys}
    out["errors"] = sum(p["errors"] for p in points)
    return out


def shm_rows(a: argparse.Namespace, home: str) -> list[dict]:
    """Bytes vs shared memory for each tensor size, at the worker and through the gateway."""
    env = {**os.environ, "RUNNERFLEET_HOME": home}
    cluster = LocalCluster(workers=1, models=["echo"], port=0, metrics_port=0, env=env)
    cluster.start()
    rows = []
    try:
        assert cluster.gateway is not None
        targets = {"worker": cluster.workers[0].address, "gateway": cluster.gateway.address}
        for size_mib in _SIZES_MIB:
            shape = f"{size_mib},{_FLOATS_PER_MIB}"
            for where, address in targets.items():
                runs: dict[str, list[dict]] = {"bytes": [], "shm": []}
                for _ in range(a.repeats):
                    runs["bytes"].append(_bytes_load(address, "echo", "FP32", shape, 1, a, home))
                    runs["shm"].append(_shm_load(address, shape, 1, a, home))
                row: dict[str, Any] = {"row": "shm", "size_mib": size_mib, "target": where}
                for path, points in runs.items():
                    med = _median(points)
                    med["mib_s"] = med["rps"] * size_mib
                    row[path] = med
                rows.append(row)
                print(_shm_line(row), flush=True)
    finally:
        cluster.stop()
    return rows


def tracing_rows(a: argparse.Namespace, home: str) -> list[dict]:
    """Gateway throughput at concurrency 16 with tracing off and with 1% sampling."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    base["RUNNERFLEET_HOME"] = home
    # the receiver runs as its own process: forking workers with a grpc server up can abort
    receiver = subprocess.Popen(
        [sys.executable, "-m", "tests.support.otlp_receiver"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdin is not None
    assert receiver.stdout is not None
    clusters: dict[str, LocalCluster] = {}
    try:
        port = int(receiver.stdout.readline())
        traced = {
            **base,
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.01",
        }
        for name, env in (("off", base), ("on_1pct", traced)):
            clusters[name] = LocalCluster(
                workers=1, models=["iris_clf"], port=0, metrics_port=0, env=env
            )
            clusters[name].start()
        runs: dict[str, list[dict]] = {name: [] for name in clusters}
        for repeat in range(a.repeats):  # alternate (ABBA), so drift and order hit both alike
            order = list(clusters.items())
            for name, cluster in order if repeat % 2 == 0 else order[::-1]:
                assert cluster.gateway is not None
                address = cluster.gateway.address
                pgids = [child.pid for child in (cluster.gateway, *cluster.workers)]
                point = _bytes_load(address, "iris_clf", "FP64", "1,4", 16, a, home, pgids)
                runs[name].append(point)
        row: dict[str, Any] = {"row": "tracing", "concurrency": 16}
        row.update({name: _median(points) for name, points in runs.items()})
        # per repeat (neighbouring windows): the spread of the on/off ratios
        row["rps_ratios"] = [
            on["rps"] / off["rps"] if off["rps"] else float("nan")
            for off, on in zip(runs["off"], runs["on_1pct"], strict=True)
        ]
        row["cpu_ms_per_req_ratios"] = [
            on["server_cpu_ms_per_req"] / off["server_cpu_ms_per_req"]
            for off, on in zip(runs["off"], runs["on_1pct"], strict=True)
            if off.get("server_cpu_ms_per_req") and on.get("server_cpu_ms_per_req")
        ]
    finally:
        for cluster in clusters.values():
            cluster.stop()  # flushes the traced processes' spans
        receiver.stdin.close()
        spans = receiver.stdout.readline().strip()
        receiver.wait(10)
    row["spans_received"] = int(spans or 0)
    print(_tracing_line(row), flush=True)
    return [row]


def _shm_line(row: dict) -> str:
    b, s = row["bytes"], row["shm"]
    ratio = s["mib_s"] / b["mib_s"] if b["mib_s"] else float("nan")
    return (
        f"shm {row['size_mib']:>2} MiB via {row['target']:<7} bytes {b['mib_s']:8.0f} MiB/s "
        f"p50 {b['p50_ms']:7.2f} ms | shm {s['mib_s']:8.0f} MiB/s p50 {s['p50_ms']:7.2f} ms | "
        f"shm/bytes {ratio:5.2f}x  errors {b['errors']}/{s['errors']}"
    )


def _tracing_line(row: dict) -> str:
    off, on = row["off"], row["on_1pct"]
    ratio = on["rps"] / off["rps"] if off["rps"] else float("nan")
    per_repeat = " ".join(f"{r:.1%}" for r in row["rps_ratios"])
    cpu = " ".join(f"{r:.2f}" for r in row["cpu_ms_per_req_ratios"])
    return (
        f"tracing c=16 off {off['rps']:8.0f} req/s p99 {off['p99_ms']:6.2f} ms | "
        f"on (1%) {on['rps']:8.0f} req/s p99 {on['p99_ms']:6.2f} ms | "
        f"on/off {ratio:6.1%} (per repeat {per_repeat}; server CPU/req on/off {cpu})  "
        f"spans received {row['spans_received']}  errors {off['errors']}/{on['errors']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs; medians")
    parser.add_argument("--only", default="shm,tracing")
    parser.add_argument("--json", default="", help="also write the rows here")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="rf-telebench-") as home:
        _seed(home)
        rows = []
        if "shm" in only:
            rows += shm_rows(args, home)
        if "tracing" in only:
            rows += tracing_rows(args, home)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
