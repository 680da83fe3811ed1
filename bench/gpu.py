"""GPU benchmark: the heavy MLP in-process on CUDA vs through a ``--device cuda:0`` worker.

    python -m bench.gpu [--duration 3] [--concurrency 1,16,64]

In-process rows/s at batch 1, 64 and 256 on ``cuda:0``, then a worker on ``cuda:0`` loaded by
``bench/loadgen.py`` (asyncio tritonclient, own process) with single-row requests: requests/s,
p50, p99 and mean batch rows. Without a CUDA device it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.worker_bench import run_loadgen, run_py, start_worker  # noqa: E402
from runnerfleet.supervisor import Supervisor  # noqa: E402

__all__ = ["main"]

_INPROCESS = """
import json, sys
import numpy as np
import store
from bench.inprocess import measure
runnable = store.get("heavy_mlp").load_runnable("cuda:0")
fn = runnable.methods["__call__"]  # returns numpy on the CPU: the copy back synchronises
x = np.random.default_rng(0).standard_normal((256, 64)).astype("float32")
print(json.dumps({b: measure(fn, x, b, float(sys.argv[1]))["rows_per_s"] for b in (1, 64, 256)}))
"""


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", default="1,16,64")
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--inprocess-s", type=float, default=2.0)
    p.add_argument("--max-batch-size", type=int, default=256)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu_bench.json"))
    a = p.parse_args(argv)
    if not _cuda_available():
        print("bench.gpu: no CUDA device visible; skipped")
        return 0
    with tempfile.TemporaryDirectory(prefix="rf-gpu-bench-") as tmp:
        home = os.path.join(tmp, "store")
        os.mkdir(home)
        env = dict(os.environ, RUNNERFLEET_HOME=home)
        run_py(["-c", "from runnerfleet import demo_models as d; d.save_heavy_mlp()"], env)
        inproc = json.loads(run_py(["-c", _INPROCESS, str(a.inprocess_s)], env))
        supervisor = Supervisor(cwd=ROOT, own_session=True)
        try:
            handle = start_worker(
                supervisor, "worker-cuda0", "heavy_mlp", env, timeout_s=180,
                device="cuda:0", max_batch_size=a.max_batch_size,
            )  # fmt: skip
            points = run_loadgen(
                handle.address, "heavy_mlp", concurrency=a.concurrency, duration_s=a.duration,
                warmup_s=a.warmup, out=os.path.join(tmp, "load-heavy_mlp.json"),
            )  # fmt: skip
        finally:
            supervisor.close()
    result = {"inprocess_rows_per_s": inproc, "worker": points}
    pathlib.Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(a.out).write_text(json.dumps(result, indent=1))
    print("in-process cuda:0 rows/s:", ", ".join(f"batch {b}: {v:.0f}" for b, v in inproc.items()))
    print("| conc | req/s | p50 ms | p99 ms | mean batch rows |")
    print("|---:|---:|---:|---:|---:|")
    for pt in points:
        mb = pt.get("mean_batch")
        print(
            f"| {pt['concurrency']} | {pt['rps']:.0f} | {pt['p50_ms']:.2f} | {pt['p99_ms']:.2f} | "
            f"{'-' if mb is None else f'{mb:.1f}'} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
