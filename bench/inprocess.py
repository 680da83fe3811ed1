"""The physical limit: the stored model called in-process, at a sweep of batch sizes.

    python -m bench.inprocess --plan PLAN.json --out OUT.json --seconds 1.0 [--models a,b]

Loads each model's runnable from the store (RUNNERFLEET_HOME), as a worker would, and calls
its method back to back on random rows of the request's row shape for about `--seconds` per
batch size. Reports rows/s and mean call time per batch size and the best.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

BATCHES = {
    "iris_clf": [1, 4, 16, 64, 256, 1024, 4096],
    "heavy_mlp": [1, 4, 16, 32, 64, 128, 256],
    "resnet18": [1, 4, 8, 16],
    "hgb": [1, 16, 64, 256, 1024],
    "transformer": [1, 4, 16, 64],
}


def measure(fn, x_full: np.ndarray, batch: int, seconds: float) -> dict:
    x = np.ascontiguousarray(x_full[:batch])
    fn(x)  # warm
    calls = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    # Bounded: at most ~`seconds` plus one call; at least 3 calls.
    while calls < 3 or time.perf_counter() < deadline:
        fn(x)
        calls += 1
        if calls >= 1_000_000:
            break
    dt = time.perf_counter() - t0
    return {
        "batch": batch,
        "calls": calls,
        "rows_per_s": calls * batch / dt,
        "call_ms": dt / calls * 1e3,
    }


def sweep(plan: dict, names: list[str], seconds: float, batches: dict | None = None) -> dict:
    """Rows/s per batch size for each model in `names` (those with a sweep) and the best."""
    from store import get as store_get

    batches = batches or BATCHES
    out: dict = {"models": {}}
    try:
        import torch

        out["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    for name in names:
        if name not in batches or name not in plan["models"]:
            continue
        spec = plan["models"][name]
        runnable = store_get(spec["tag"]).load_runnable("cpu")
        fn = runnable.methods[spec["method"]]
        rows = [d if d > 0 else 1 for d in spec["row_shape"]]
        rng = np.random.default_rng(0)
        x = rng.standard_normal((max(batches[name]), *rows)).astype(spec["dtype"])
        points = [measure(fn, x, b, seconds) for b in batches[name]]
        best = max(points, key=lambda r: r["rows_per_s"])
        out["models"][name] = {"points": points, "best": best}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plan", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--models", default="")
    a = p.parse_args(argv)
    plan = json.loads(pathlib.Path(a.plan).read_text())
    names = [m for m in a.models.split(",") if m] or list(plan["models"])
    pathlib.Path(a.out).write_text(json.dumps(sweep(plan, names, a.seconds), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
