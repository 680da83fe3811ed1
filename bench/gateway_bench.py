"""Gateway overhead: client -> gateway -> worker beside client -> worker, in one run.

Starts one worker (iris_clf and heavy_mlp from a throwaway store) and one gateway in front of it
(runnerfleet.local_cluster), then, for each model and concurrency, runs the shared load
generator (`bench/loadgen.py`, asyncio tritonclient in its own process) against the worker and
against the gateway, alternating, and prints requests/s, p50 and p99 with the gateway/direct
ratios (medians of `--repeats` alternating runs). Targets on 2 cores: +0.5 ms p50 at
concurrency 1; iris throughput >= 90% of direct at 16 and 64.
Usage: `python -m bench.gateway_bench [--duration-s 5] [--repeats 3] [--json out.json]`.
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

from runnerfleet.local_cluster import LocalCluster

__all__ = ["load_point", "main", "median_point"]

_MODELS = {  # name -> (datatype, request shape)
    "iris_clf": ("FP64", "1,4"),
    "heavy_mlp": ("FP32", "1,64"),
}


def _seed(home: str) -> None:
    code = "from runnerfleet import demo_models as d; d.save_iris(); d.save_heavy_mlp()"
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={**os.environ, "RUNNERFLEET_HOME": home}
    )


def load_point(target: str, model: str, concurrency: int, duration_s: float, out_dir: str) -> dict:
    """One `bench/loadgen.py` window (1 s warm-up) of `model` at `concurrency` on `target`."""
    datatype, shape = _MODELS[model]
    out = pathlib.Path(out_dir) / f"{model}-{concurrency}-{target.replace(':', '_')}.json"
    argv = [
        sys.executable, "-m", "bench.loadgen", "--target", target, "--model", model,
        "--datatype", datatype, "--shape", shape, "--concurrency", str(concurrency),
        "--duration", str(duration_s), "--warmup", "1", "--out", str(out),
    ]  # fmt: skip
    subprocess.run(argv, check=False)
    result = json.loads(out.read_text())
    if "error" in result:
        raise RuntimeError(f"load generator failed against {target}: {result['error']}")
    return result["points"][0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--models", default="iris_clf,heavy_mlp")
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs; medians")
    parser.add_argument("--json", default="", help="also write the rows here")
    args = parser.parse_args(argv)
    models = args.models.split(",")
    with tempfile.TemporaryDirectory(prefix="rf-gwbench-") as home:
        _seed(home)
        env = {**os.environ, "RUNNERFLEET_HOME": home}
        cluster = LocalCluster(workers=1, models=models, port=0, metrics_port=0, env=env)
        cluster.start()
        rows = []
        try:
            assert cluster.gateway is not None
            direct, gateway = cluster.workers[0].address, cluster.gateway.address
            for model in models:
                for concurrency in (int(c) for c in args.concurrency.split(",")):
                    runs: dict[str, list[dict]] = {"direct": [], "gateway": []}
                    for _ in range(args.repeats):  # alternate, so drift hits both alike
                        for target, address in (("direct", direct), ("gateway", gateway)):
                            point = load_point(address, model, concurrency, args.duration_s, home)
                            runs[target].append(point)
                    row: dict = {"model": model, "concurrency": concurrency}
                    row.update({target: median_point(points) for target, points in runs.items()})
                    rows.append(row)
                    print(_line(row), flush=True)
        finally:
            cluster.stop()
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def median_point(points: list[dict]) -> dict:
    """Per-field median of several runs' figures (errors summed)."""
    out = {key: statistics.median(p[key] for p in points) for key in ("rps", "p50_ms", "p99_ms")}
    out["errors"] = sum(p["errors"] for p in points)
    return out


def _line(row: dict) -> str:
    w, g = row["direct"], row["gateway"]
    ratio = g["rps"] / w["rps"] if w["rps"] else float("nan")
    return (
        f"{row['model']:<10} c={row['concurrency']:<3} "
        f"direct {w['rps']:8.0f} req/s p50 {w['p50_ms']:6.2f} p99 {w['p99_ms']:6.2f} ms | "
        f"gateway {g['rps']:8.0f} req/s p50 {g['p50_ms']:6.2f} p99 {g['p99_ms']:6.2f} ms | "
        f"throughput {ratio:6.1%}  p50 +{g['p50_ms'] - w['p50_ms']:.2f} ms  "
        f"errors {w['errors']}/{g['errors']}"
    )


if __name__ == "__main__":
    sys.exit(main())
