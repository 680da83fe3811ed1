"""Triton's perf_analyzer (from the tritonclient 2.50.0 wheel) as a neutral second load.

`find()` returns the binary and the environment it needs. The binary and the libcudart.so.12 it
links against (even on a CPU-only machine) are cached under `.cache/perf_analyzer/{bin,lib}` by
`tests/compat/perf_analyzer_setup.py`, which this runs as a script when the cache is empty;
`$PERF_ANALYZER` overrides the binary. It also needs Debian's libb64-0d (.ci/system-deps.sh).

`run()` measures one model at one concurrency and parses perf_analyzer's CSV.
"""

from __future__ import annotations

import csv
import os
import pathlib
import subprocess
import sys
from collections.abc import Sequence

ROOT = pathlib.Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "perf_analyzer"
SETUP_SCRIPT = ROOT / "tests" / "compat" / "perf_analyzer_setup.py"


def _env() -> dict[str, str]:
    old = os.environ.get("LD_LIBRARY_PATH", "")
    return {"LD_LIBRARY_PATH": os.pathsep.join(p for p in (str(CACHE / "lib"), old) if p)}


def _works(binary: pathlib.Path, env: dict[str, str]) -> str:
    """'' when the binary starts, else why not."""
    try:
        r = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, **env},
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{binary} does not run: {e}"
    out = r.stderr + r.stdout
    if "error while loading shared libraries" in out:
        return f"{binary}: {out.strip()[:300]} (libb64-0d: .ci/system-deps.sh)"
    return ""


def find(log: pathlib.Path) -> tuple[pathlib.Path, dict[str, str]]:
    """The perf_analyzer binary and the env vars it needs; raises with the reason it can't."""
    env = _env()
    binary = pathlib.Path(os.environ.get("PERF_ANALYZER") or CACHE / "bin" / "perf_analyzer")
    if not binary.exists() and "PERF_ANALYZER" not in os.environ:
        if not SETUP_SCRIPT.exists():
            raise RuntimeError(f"no {binary} and no {SETUP_SCRIPT.relative_to(ROOT)} to fetch it")
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as f:
            subprocess.run(
                [sys.executable, str(SETUP_SCRIPT)],
                stdout=f,
                stderr=subprocess.STDOUT,
                timeout=900,
                check=False,
                cwd=str(ROOT),
            )
    if not binary.exists():
        raise RuntimeError(f"perf_analyzer not found at {binary}; see {log}")
    why = _works(binary, env)
    if why:
        raise RuntimeError(why)
    return binary, env


def shape_for(spec: dict) -> str:
    """`--shape` for a model (a `bench/prepare.py` plan entry) whose request rows have a
    variable dimension, from the request the benchmark sends; '' when perf_analyzer can take the
    model's own ModelConfig dims."""
    if not any(d < 0 for d in spec["row_shape"]):
        return ""
    return f"{spec['input_name']}:" + ",".join(str(d) for d in spec["request_shape"][1:])


def run(
    binary: pathlib.Path,
    env: dict[str, str],
    *,
    target: str,
    model: str,
    concurrency: int,
    out_csv: pathlib.Path,
    log: pathlib.Path,
    interval_ms: int,
    max_trials: int,
    shape: str = "",
    headers: Sequence[tuple[str, str]] = (),
    timeout: float = 120.0,
    stability_pct: int = 999,
    request_rate: float = 0,
    distribution: str = "poisson",
) -> dict:
    """One perf_analyzer measurement: closed loop at `concurrency`, or open loop at
    `request_rate` req/s (`--request-rate-range`, `distribution` arrivals) when it is > 0.

    `stability_pct` 999 turns perf_analyzer's stability check off (any window is accepted);
    with e.g. 10 it keeps measuring until 3 windows agree within 10% or `max_trials` ends, and
    `stable` says which happened.
    """
    load = (
        [
            "--request-rate-range",
            f"{request_rate}:{request_rate}",
            "--request-distribution",
            distribution,
        ]
        if request_rate > 0
        else ["--concurrency-range", f"{concurrency}:{concurrency}"]
    )
    argv = [
        str(binary),
        "-m",
        model,
        "-u",
        target,
        "-i",
        "grpc",
        "-b",
        "1",
        *load,
        "--measurement-mode",
        "time_windows",
        "--measurement-interval",
        str(interval_ms),
        "--max-trials",
        str(max_trials),
        "--stability-percentage",
        str(stability_pct),
        "-f",
        str(out_csv),
    ]
    if shape:
        argv += ["--shape", shape]
    for k, v in headers:
        argv += ["-H", f"{k}:{v}"]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as f:
        f.write(("\n$ " + " ".join(argv) + "\n").encode())
        f.flush()
        r = subprocess.run(
            argv,
            stdout=f,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            env={**os.environ, **env},
            check=False,
        )
    if not out_csv.exists():
        tail = log.read_bytes()[-600:].decode("utf-8", "replace")
        raise RuntimeError(f"perf_analyzer exited {r.returncode} without results: {tail}")
    with open(out_csv) as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise RuntimeError("perf_analyzer wrote an empty CSV")
    row = rows[-1]

    def us(key: str) -> float | None:
        v = row.get(key)
        return float(v) / 1e3 if v not in (None, "") else None

    return {
        "mode": "rate" if request_rate > 0 else "c",
        "value": request_rate if request_rate > 0 else concurrency,
        "stability_pct": stability_pct,
        "concurrency": concurrency,
        "rps": float(row["Inferences/Second"]),
        "p50_ms": us("p50 latency"),
        "p90_ms": us("p90 latency"),
        "p99_ms": us("p99 latency"),
        "mean_ms": us("Avg latency"),
        "server_queue_ms": us("Server Queue"),
        "server_compute_ms": us("Server Compute Infer"),
        "stable": r.returncode == 0,
    }
