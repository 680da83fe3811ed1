"""A worker called directly: adaptive batching on vs off, beside the model's in-process speed.

    python -m bench.worker_bench [--duration 3] [--concurrency 1,16,64] [--models a,b]

For each model: in-process rows/s at batch 1 and 64 (a subprocess, as a worker loads it), then
a worker with batching on (``--max-batch-size 64``) and one with batching disabled
(``--max-batch-size 1``), each loaded by ``bench/loadgen.py`` (asyncio tritonclient in its own
process) with single-row requests at each concurrency: requests/s, p50, p99 and mean batch rows
(ModelStatistics deltas). Prints a table and the issue's targets; writes JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Sequence

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runnerfleet.supervisor import (  # noqa: E402 - never imports protos
    Child,
    Supervisor,
    cli_command,
    flag_argv,
    wait_serving,
)

__all__ = ["MODELS", "main", "run_loadgen", "run_py", "start_worker"]

MODELS = {  # name -> (saver in runnerfleet.demo_models, input datatype, row shape)
    "iris_clf": ("save_iris", "FP64", "1,4"),
    "heavy_mlp": ("save_heavy_mlp", "FP32", "1,64"),
}

_SEED = """
import sys
from runnerfleet import demo_models as d
for saver in sys.argv[1:]:
    getattr(d, saver)()
"""

_INPROCESS = """
import json, sys
import numpy as np
import store
from bench.inprocess import measure
name, dtype, width, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
runnable = store.get(name).load_runnable("cpu")
fn = runnable.methods[runnable.default_method]
x = np.random.default_rng(0).standard_normal((64, width)).astype(dtype)
print(json.dumps({b: measure(fn, x, b, seconds)["rows_per_s"] for b in (1, 64)}))
"""


def run_py(args: list[str], env: dict[str, str], timeout_s: float = 600.0) -> str:
    """Run this interpreter with `args` in the repository root; its stdout, or RuntimeError."""
    done = subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args[:3]} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def start_worker(
    supervisor: Supervisor,
    name: str,
    model: str,
    env: dict[str, str],
    *,
    timeout_s: float = 120.0,
    **flags: object,
) -> Child:
    """`runnerfleet worker` serving `model` on 127.0.0.1 (port 0, CPU, WARNING logs; `flags` as
    `max_batch_size=1`), SERVING when this returns; stopped again if it never gets there.

    `env` is its whole environment (the store in `RUNNERFLEET_HOME`). With a supervisor made
    with `own_session=True` the worker leads its own process group, whose CPU `--cpu-pgid` reads.
    """
    argv = cli_command(
        "worker", "--models", model, "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0",
        *flag_argv({"device": "cpu", "log_level": "WARNING", **flags}),
    )  # fmt: skip
    child = supervisor.start(name, argv, host="127.0.0.1", timeout_s=timeout_s, env=env)
    try:
        wait_serving(child.address, timeout_s=timeout_s)
    except BaseException:
        supervisor.stop(child, grace_s=5.0)
        raise
    return child


def run_loadgen(
    address: str,
    model: str,
    *,
    concurrency: str,
    duration_s: float,
    warmup_s: float,
    out: str,
    cpu_pgids: Sequence[int] = (),
) -> list[dict]:
    """`bench/loadgen.py` against `address` with single-row requests of `model` (MODELS): its
    points, one per concurrency level (batch sizes from the same server's ModelStatistics)."""
    _, datatype, shape = MODELS[model]
    run_py(
        [
            "-m", "bench.loadgen", "--target", address, "--model", model,
            "--datatype", datatype, "--shape", shape, "--concurrency", concurrency,
            "--duration", str(duration_s), "--warmup", str(warmup_s),
            "--stats-target", address, *(f"--cpu-pgid={g}" for g in cpu_pgids), "--out", out,
        ],
        dict(os.environ),
    )  # fmt: skip
    result = json.loads(pathlib.Path(out).read_text())
    if "error" in result:
        raise RuntimeError(result["error"])
    return list(result["points"])


def _measure(a: argparse.Namespace, home: str, tmp: str) -> dict:
    env = dict(os.environ, RUNNERFLEET_HOME=home)
    names = [m for m in a.models.split(",") if m]
    run_py(["-c", _SEED, *(MODELS[m][0] for m in names)], env)
    results: dict = {"models": {}}
    supervisor = Supervisor(cwd=ROOT, own_session=True)
    try:
        for name in names:
            _, datatype, shape = MODELS[name]
            dtype = {"FP32": "float32", "FP64": "float64"}[datatype]
            width = shape.split(",")[1]
            line = run_py(["-c", _INPROCESS, name, dtype, width, str(a.inprocess_s)], env, 300)
            ip = {int(k): v for k, v in json.loads(line).items()}
            entry: dict = {"inprocess_rows_per_s": ip}
            for label, max_batch in (("batching", a.max_batch_size), ("disabled", 1)):
                handle = start_worker(
                    supervisor, f"worker-{label}", name, env, max_batch_size=max_batch
                )
                try:
                    entry[label] = run_loadgen(
                        handle.address, name, concurrency=a.concurrency, duration_s=a.duration,
                        warmup_s=a.warmup, out=os.path.join(tmp, f"load-{name}.json"),
                    )  # fmt: skip
                finally:
                    supervisor.stop(handle, grace_s=30)
            results["models"][name] = entry
    finally:
        supervisor.close()
    return results


def _report(results: dict) -> str:
    lines = [
        "| model | mode | conc | req/s | p50 ms | p99 ms | mean batch rows |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, entry in results["models"].items():
        for label in ("batching", "disabled"):
            for p in entry[label]:
                mb = p.get("mean_batch")
                lines.append(
                    f"| {name} | {label} | {p['concurrency']} | {p['rps']:.0f} | "
                    f"{p['p50_ms']:.2f} | {p['p99_ms']:.2f} | "
                    f"{'-' if mb is None else f'{mb:.1f}'} |"
                )
        ip = entry["inprocess_rows_per_s"]
        lines.append(
            f"| {name} | in-process | batch 1 / 64 | {ip[1]:.0f} / {ip[64]:.0f} rows/s | | | |"
        )
    lines += ["", *_targets(results)]
    return "\n".join(lines)


def _targets(results: dict) -> list[str]:
    out = []
    for name, entry in results["models"].items():
        on = {p["concurrency"]: p for p in entry["batching"]}
        off = {p["concurrency"]: p for p in entry["disabled"]}
        if 1 in on and 1 in off:
            delta = on[1]["p50_ms"] - off[1]["p50_ms"]
            out.append(f"- {name}: c=1 p50 batching - disabled = {delta:+.3f} ms (target <= 0.3)")
        if name == "heavy_mlp" and 64 in on and 64 in off:
            ratio = on[64]["rps"] / max(off[64]["rps"], 1e-9)
            share = on[64]["rps"] / entry["inprocess_rows_per_s"][64]
            out.append(
                f"- heavy_mlp: c=64 batching/disabled = {ratio:.1f}x (target >= 5x); "
                f"{share:.0%} of in-process rows/s at batch 64 (target >= 50%)"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="iris_clf,heavy_mlp")
    p.add_argument("--concurrency", default="1,16,64")
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--inprocess-s", type=float, default=1.5)
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "worker_bench.json"))
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rf-worker-bench-") as tmp:
        home = os.path.join(tmp, "store")
        os.mkdir(home)
        results = _measure(a, home, tmp)
    results["cpu_count"] = os.cpu_count()
    pathlib.Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(a.out).write_text(json.dumps(results, indent=1))
    print(_report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
