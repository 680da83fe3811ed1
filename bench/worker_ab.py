"""Worker settings A/B: one worker per variant, loaded in turn, ratios to variant A per repeat.

    python -m bench.worker_ab --model heavy_mlp --concurrency 64 --duration 3 --repeats 3 \
        --variant A: --variant B:RUNNERFLEET_THREADS=1 [--inprocess]

Each ``--variant NAME:K=V,K=V`` is a worker started with those environment variables (a
``RUNNERFLEET_*`` variable is a worker setting). All variants' workers start once and stay up;
each repeat loads every variant once (``bench/loadgen.py``, single-row requests), in an order
rotated per repeat, so a neighbour's load on a shared machine hits every variant alike. Reports
requests/s, p50, p99, mean batch rows and the worker's CPU per request (its process group),
each variant's req/s and p50 as a ratio to the first variant in the same repeat, and with
``--inprocess`` the model's in-process rows/s at batch 64 measured in the same repeat (the best
of 1 and 2 torch threads, each reported).
``--via-gateway`` puts a gateway (default settings) before each variant's worker and loads it;
the CPU per request is then the gateway's and the worker's together.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.worker_bench import MODELS, run_loadgen, run_py, start_worker  # noqa: E402
from runnerfleet.supervisor import Child, Supervisor, cli_command, wait_serving  # noqa: E402

__all__ = ["main"]

_INPROCESS = """
import json, sys
import numpy as np
import store
from bench.inprocess import measure
name, dtype, width, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
runnable = store.get(name).load_runnable("cpu")
fn = runnable.methods[runnable.default_method]
x = np.random.default_rng(0).standard_normal((64, width)).astype(dtype)
try:
    import torch
except ImportError:
    torch = None
out = {}
for threads in (1, 2) if torch is not None else (0,):
    if torch is not None:
        torch.set_num_threads(threads)
    out[threads] = measure(fn, x, 64, seconds / 2)["rows_per_s"]
print(json.dumps(out))
"""


def _variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, pairs = text.partition(":")
    env = dict(p.split("=", 1) for p in pairs.split(",") if p)
    return name, env


def _loadavg() -> float:
    return os.getloadavg()[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="heavy_mlp", choices=sorted(MODELS))
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--variant", action="append", default=[], help="NAME:K=V,K=V")
    p.add_argument("--inprocess", action="store_true", help="in-process rows/s at batch 64")
    p.add_argument("--inprocess-s", type=float, default=2.0)
    p.add_argument("--via-gateway", action="store_true", help="a gateway before each worker")
    p.add_argument("--json", default="")
    a = p.parse_args(argv)
    variants = [_variant(v) for v in a.variant] or [("A", {})]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="rf-worker-ab-") as tmp:
        home = os.path.join(tmp, "store")
        os.mkdir(home)
        base_env = dict(os.environ, RUNNERFLEET_HOME=home)
        seed = f"from runnerfleet import demo_models as d; d.{MODELS[a.model][0]}()"
        run_py(["-c", seed], base_env)
        supervisor = Supervisor(cwd=ROOT, own_session=True)
        handles: dict[str, list[Child]] = {}
        try:
            for name, env in variants:
                worker = start_worker(supervisor, f"worker-{name}", a.model, {**base_env, **env})
                handles[name] = [worker]
                if a.via_gateway:
                    argv_g = cli_command(
                        "gateway", "--workers", worker.address, "--host", "127.0.0.1",
                        "--port", "0", "--metrics-port", "0", "--port-file", "{port_file}",
                    )  # fmt: skip
                    gateway = supervisor.start(
                        f"gateway-{name}", argv_g, host="127.0.0.1", timeout_s=120, env=base_env
                    )
                    handles[name].insert(0, gateway)
                    wait_serving(gateway.address, timeout_s=120)
            for r in range(a.repeats):
                order = variants[r % len(variants) :] + variants[: r % len(variants)]
                row: dict = {"repeat": r, "order": [n for n, _ in order], "points": {}}
                if a.inprocess:
                    _, datatype, shape = MODELS[a.model]
                    dtype = {"FP32": "float32", "FP64": "float64"}[datatype]
                    args = [a.model, dtype, shape.split(",")[1], str(a.inprocess_s)]
                    by_threads = json.loads(run_py(["-c", _INPROCESS, *args], base_env))
                    row["inprocess_by_threads"] = by_threads
                    row["inprocess_rows_per_s"] = max(by_threads.values())
                for name, _ in order:
                    front = handles[name][0]
                    out = os.path.join(tmp, f"{name}-{r}.json")
                    (point,) = run_loadgen(
                        front.address, a.model, concurrency=str(a.concurrency),
                        duration_s=a.duration, warmup_s=a.warmup, out=out,
                        cpu_pgids=[h.pid for h in handles[name]],
                    )  # fmt: skip
                    point["loadavg_1m"] = _loadavg()
                    row["points"][name] = point
                rows.append(row)
                _print_row(row, [n for n, _ in variants])
        finally:
            for group in handles.values():
                for h in group:
                    supervisor.stop(h, grace_s=30)
            supervisor.close()
    _print_summary(rows, [n for n, _ in variants])
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _print_row(row: dict, names: list[str]) -> None:
    base = row["points"][names[0]]
    ip = row.get("inprocess_rows_per_s")
    print(f"repeat {row['repeat']} (order {','.join(row['order'])})"
          + (f" in-process batch 64 (best of torch threads {row['inprocess_by_threads']}): "
             f"{ip:.0f} rows/s" if ip else ""), flush=True)  # fmt: skip
    for n in names:
        pt = row["points"][n]
        share = f" {pt['rps'] / ip:.0%} of in-process" if ip else ""
        print(
            f"  {n:>10}: {pt['rps']:7.0f} req/s x{pt['rps'] / base['rps']:.3f}  "
            f"p50 {pt['p50_ms']:7.2f} ms x{pt['p50_ms'] / base['p50_ms']:.3f}  "
            f"p99 {pt['p99_ms']:7.2f}  batch {_fmt(pt.get('mean_batch'), '.1f')}  "
            f"cpu/req {_fmt(pt.get('server_cpu_ms_per_req'), '.3f')} ms  "
            f"load {pt['loadavg_1m']:.1f}{share}",
            flush=True,
        )


def _print_summary(rows: list[dict], names: list[str]) -> None:
    print("median over repeats (ratio to the first variant, min-max):")
    for n in names:
        rps = [r["points"][n]["rps"] / r["points"][names[0]]["rps"] for r in rows]
        p50 = [r["points"][n]["p50_ms"] / r["points"][names[0]]["p50_ms"] for r in rows]
        cpu = [r["points"][n].get("server_cpu_ms_per_req") or 0.0 for r in rows]
        share = [r["points"][n]["rps"] / r["inprocess_rows_per_s"] for r in rows
                 if r.get("inprocess_rows_per_s")]  # fmt: skip
        print(
            f"  {n:>10}: req/s x{statistics.median(rps):.3f} ({min(rps):.3f}-{max(rps):.3f})  "
            f"p50 x{statistics.median(p50):.3f} ({min(p50):.3f}-{max(p50):.3f})  "
            f"cpu/req {statistics.median(cpu):.3f} ms"
            + (
                f"  in-process share {statistics.median(share):.0%} "
                f"({min(share):.0%}-{max(share):.0%})"
                if share
                else ""
            )  # fmt: skip
        )


if __name__ == "__main__":
    sys.exit(main())
