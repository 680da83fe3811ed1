"""Peer servers (MLServer, Triton via PyTriton, BentoML, Ray Serve) in their own venvs.

`ensure_venv(name)` creates `.cache/bench-peers/<name>/venv` and pip-installs the peer's pinned
requirements once: a marker file records what was installed, so a second run installs nothing
(idempotent, cached). Installs and starts are bounded in time; any failure is raised with the
reason, which the harness records before it goes on without that peer. The project's own venv
is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench import procs
from bench.proc_stat import tree_pgids

ROOT = pathlib.Path(__file__).resolve().parent.parent
CACHE = pathlib.Path(os.environ.get("RUNNERFLEET_BENCH_CACHE", ROOT / ".cache" / "bench-peers"))
TRITON_TOKEN = "runnerfleet-bench-token"
TRITON_TOKEN_HEADER = "triton-grpc-protocol-triton-access-token"
INSTALL_TIMEOUT_S = 1200


def _sklearn_version() -> str:
    from importlib.metadata import version

    return version("scikit-learn")


def requirements(name: str) -> list[list[str]]:
    """pip install steps per peer (torch first, alone, so pip takes the local CPU wheel)."""
    sk = f"scikit-learn=={_sklearn_version()}"  # the same pickle format as the project's store
    torch = "torch==2.13.0"
    if name == "mlserver":  # torch: the custom TorchScript runtime (bench/peer_mlserver_runtime.py)
        return [[torch], ["mlserver==1.7.*", "mlserver-sklearn==1.7.*", "uvloop<0.22", sk, torch]]
    if name == "pytriton":
        return [[torch], ["nvidia-pytriton==0.7.*", sk, torch]]
    if name == "bentoml":
        return [[torch], ["bentoml==1.4.*", sk, torch]]
    if name == "rayserve":
        return [[torch], ["ray[serve]==2.*", sk, torch]]
    raise ValueError(name)


def venv_python(name: str) -> pathlib.Path:
    return CACHE / name / "venv" / "bin" / "python"


def ensure_venv(name: str, log: pathlib.Path) -> pathlib.Path:
    """Create and fill the peer's venv unless its marker says it already holds these pins."""
    venv = CACHE / name / "venv"
    marker = CACHE / name / "installed.json"
    want = {"requirements": requirements(name), "python": sys.version.split()[0]}
    if marker.exists() and venv_python(name).exists():
        try:
            if json.loads(marker.read_text()) == want:
                return venv_python(name)
        except ValueError:
            pass
    log.parent.mkdir(parents=True, exist_ok=True)
    base = pathlib.Path(sys.base_prefix) / "bin" / "python3"
    deadline = time.monotonic() + INSTALL_TIMEOUT_S
    with open(log, "ab") as f:
        steps = [[str(base), "-m", "venv", str(venv)]]
        steps.append(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--upgrade", "pip"]
        )
        steps.extend(
            [str(venv / "bin" / "python"), "-m", "pip", "install", *req]
            for req in want["requirements"]
        )
        for cmd in steps:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"installing {name} took over {INSTALL_TIMEOUT_S}s")
            f.write(("\n$ " + " ".join(cmd) + "\n").encode())
            f.flush()
            r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=left, check=False)
            if r.returncode != 0:
                raise RuntimeError(f"`{' '.join(cmd[2:])}` failed ({r.returncode}); see {log}")
    marker.write_text(json.dumps(want))
    return venv_python(name)


def peer_versions(py: pathlib.Path, dists: list[str]) -> dict[str, str]:
    code = (
        "import json,sys\nfrom importlib.metadata import version\nout={}\n"
        "for d in sys.argv[1:]:\n"
        "    try: out[d]=version(d)\n"
        "    except Exception as e: out[d]='?'\n"
        "print(json.dumps(out))"
    )
    r = subprocess.run([str(py), "-c", code, *dists], capture_output=True, text=True, timeout=60)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {}


@dataclass
class Served:
    """A running server the load generator can hit."""

    name: str
    target: str
    procs: list = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    stats_targets: list[str] = field(default_factory=list)  # ModelStatistics sources
    metrics_url: str = ""  # or a Prometheus histogram
    batch_metric: str = ""
    info: dict = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)  # role -> PID, for --profile
    pgids: list[int] = field(default_factory=list)  # process groups whose CPU is reported
    cleanup: list[pathlib.Path] = field(default_factory=list)  # removed once stopped
    protocol: str = "grpc"  # how the load generator calls `target` (grpc or http)
    http_target: str = ""  # host:port of the same server's HTTP/REST v2 endpoint, if any
    http_format: str = ""  # protocol http: the JSON bodies (bench/race_load.py HTTP_FORMATS)

    def __post_init__(self) -> None:
        if not self.pgids:
            self.pgids = [p.pid for p in self.procs]  # procs.start makes each a group leader

    def stop(self, timeout: float = 20.0) -> None:
        for p in reversed(self.procs):
            procs.stop(p, timeout=timeout)
        # Groups a peer made inside the session we started (Ray's actors): gone with their
        # server normally; killed here if one outlived it.
        for pgid in set(self.pgids) - {p.pid for p in self.procs}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        for path in self.cleanup:
            shutil.rmtree(path, ignore_errors=True)


def _peer_ports(count: int) -> list[int]:
    """Ports for a peer server that takes fixed ports and cannot report a bound one.

    Still bind-close-reuse (a racy pick): MLServer and PyTriton (tritonserver) have no port
    file. Only the peers use it; RunnerFleet processes always report their own ports.
    """
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def start_mlserver(
    plan: dict,
    run_dir: pathlib.Path,
    models: list[str],
    *,
    max_batch_size: int,
    max_batch_time_s: float,
    parallel_workers: int | None = None,
    timeout: float = 120.0,
) -> Served:
    """MLServer with scikit-learn models (its own runtime) and torch ones (a TorchScript runtime).

    Adaptive batching is off when `max_batch_size` <= 1; `parallel_workers` None keeps MLServer's
    default (1), 0 runs inference in the server process itself.
    """
    py = ensure_venv("mlserver", run_dir / "logs" / "mlserver-install.log")
    repo = run_dir / "mlserver-repo"
    repo.mkdir(parents=True, exist_ok=True)
    grpc_port, http_port, metrics_port = _peer_ports(3)
    (repo / "settings.json").write_text(
        json.dumps(
            {
                "debug": False,
                "host": "127.0.0.1",
                "http_port": http_port,
                "grpc_port": grpc_port,
                "metrics_port": metrics_port,
                "grpc_max_message_length": 256 * 2**20,
                "metrics_dir": str(run_dir / "mlserver-metrics"),
                "environments_dir": str(run_dir / "mlserver-envs"),
                **({} if parallel_workers is None else {"parallel_workers": parallel_workers}),
            },
            indent=1,
        )
    )
    served = []
    for name in models:
        spec = plan["models"][name]
        if spec.get("peer_kind") == "sklearn":
            impl = "peer_mlserver_runtime.CountingSKLearnModel"
            extra = {"predict_fn": spec["method"]}
        elif spec.get("peer_kind") == "torchscript":
            impl = "peer_mlserver_torch.TorchScriptModel"
            extra = {"output_name": spec["output_name"]}
        else:
            continue  # echo: no MLServer runtime for it
        mdir = repo / name
        mdir.mkdir(exist_ok=True)
        batching = (
            {"max_batch_size": max_batch_size, "max_batch_time": max_batch_time_s}
            if max_batch_size > 1
            else {}
        )
        (mdir / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": name,
                    "implementation": impl,
                    **batching,
                    "parameters": {"uri": spec["peer_artifact"], "extra": extra},
                },
                indent=1,
            )
        )
        served.append(name)
    if not served:
        raise RuntimeError("no model MLServer can serve in this run")
    env = {
        "PYTHONPATH": str(ROOT / "bench"),
        "MLSERVER_METRICS_DIR": str(run_dir / "mlserver-metrics"),
    }
    mlserver_bin = py.parent / "mlserver"
    proc = procs.start(
        "mlserver",
        [str(mlserver_bin), "start", str(repo)],
        run_dir / "logs" / "mlserver.log",
        env=env,
        cwd=str(repo),
    )
    s = Served(
        name="mlserver",
        target=f"127.0.0.1:{grpc_port}",
        procs=[proc],
        metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
        batch_metric="bench_batch_rows",
    )
    try:
        for name in served:
            procs.wait_grpc_ready(s.target, timeout, proc, health=False, model=name)
    except Exception:
        s.stop()
        raise
    s.info = {
        "versions": peer_versions(py, ["mlserver", "mlserver-sklearn", "scikit-learn", "uvloop"]),
        "models": served,
        "settings": {
            "adaptive_batching": max_batch_size > 1,
            "max_batch_size": max_batch_size,
            "max_batch_time_s": max_batch_time_s,
            "parallel_workers": "default (1)" if parallel_workers is None else parallel_workers,
        },
    }
    return s


def start_pytriton(
    plan: dict,
    run_dir: pathlib.Path,
    models: list[str],
    *,
    max_batch_size: int,
    queue_delay_us: int,
    instances: int = 1,
    timeout: float = 180.0,
) -> Served:
    py = ensure_venv("pytriton", run_dir / "logs" / "pytriton-install.log")
    libdir = subprocess.run(
        [str(py), "-c", "import sysconfig;print(sysconfig.get_config_var('LIBDIR'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    grpc_port, http_port, metrics_port = _peer_ports(3)
    # PyTriton puts its model instances' ZeroMQ IPC sockets in the workspace: their paths must
    # fit sockaddr_un (107 bytes), which a run folder deep in a worktree does not.
    short = pathlib.Path(tempfile.mkdtemp(prefix="rf-pyt-"))
    workspace = short / "ws"  # PyTriton creates it: it refuses an existing folder
    ready = run_dir / "pytriton.ready"
    ready.unlink(missing_ok=True)
    env = {
        "LD_LIBRARY_PATH": ":".join(x for x in [libdir, os.environ.get("LD_LIBRARY_PATH", "")] if x)
    }
    argv = [
        str(py),
        str(ROOT / "bench" / "peer_pytriton.py"),
        "--plan",
        str(run_dir / "plan.json"),
        "--models",
        ",".join(models),
        "--grpc-port",
        str(grpc_port),
        "--http-port",
        str(http_port),
        "--metrics-port",
        str(metrics_port),
        "--token",
        TRITON_TOKEN,
        "--max-batch-size",
        str(max_batch_size),
        "--queue-delay-us",
        str(queue_delay_us),
        "--instances",
        str(instances),
        "--workspace",
        str(workspace),
        "--ready-file",
        str(ready),
    ]
    proc = procs.start("pytriton", argv, run_dir / "logs" / "pytriton.log", env=env)
    hdr = [(TRITON_TOKEN_HEADER, TRITON_TOKEN)]
    s = Served(
        name="triton",
        target=f"127.0.0.1:{grpc_port}",
        procs=[proc],
        headers=hdr,
        stats_targets=[f"127.0.0.1:{grpc_port}"],
        cleanup=[short],
        http_target=f"127.0.0.1:{http_port}",
    )
    try:
        procs.wait_for("PyTriton ready file", ready.exists, timeout, proc)
        for name in models:
            procs.wait_grpc_ready(s.target, 60, proc, health=False, model=name, headers=hdr)
    except Exception:
        s.stop()
        raise
    s.info = {
        "versions": peer_versions(py, ["nvidia-pytriton", "torch", "scikit-learn", "numpy"]),
        "models": models,
        "settings": {
            "max_batch_size": max_batch_size,
            "max_queue_delay_microseconds": queue_delay_us,
            "instances": instances,
            "backend": "python (PyTriton proxy)",
        },
    }
    return s


def wait_http_ok(url: str, timeout: float, proc: procs.Proc | None = None) -> None:
    """Poll a GET `url` until it answers 200 (a peer's readiness route)."""
    import urllib.request

    def check() -> bool:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - 127.0.0.1 only
            return r.status == 200

    procs.wait_for(url, check, timeout, proc)


def _wait_counting_groups(s: Served, wait: Callable[[], None]) -> None:
    """`wait()` for a peer that spreads over process groups of its own; then (ready or not)
    `s.pgids` holds every group under its process, so their CPU and RSS count towards it and
    `s.stop()` kills them all. Not ready: stopped, and the error raised."""
    try:
        wait()
    except Exception:
        s.pgids = tree_pgids(s.procs[0].pid)
        s.stop()
        raise
    s.pgids = tree_pgids(s.procs[0].pid)


def http_peer_models(plan: dict, models: list[str]) -> list[str]:
    """The models a JSON-over-HTTP peer serves: the ones with exported weights (not echo)."""
    return [m for m in models if plan["models"][m].get("peer_kind") in ("sklearn", "torchscript")]


def start_bentoml(
    plan: dict,
    run_dir: pathlib.Path,
    models: list[str],
    *,
    workers: int = 1,
    max_batch_size: int = 64,
    max_latency_ms: int = 10_000,
    timeout: float = 180.0,
) -> Served:
    """`bentoml serve` of `bench/peer_bentoml.py` (adaptive batching on), ready on /readyz."""
    py = ensure_venv("bentoml", run_dir / "logs" / "bentoml-install.log")
    served = http_peer_models(plan, models)
    if not served:
        raise RuntimeError("no model BentoML can serve in this run")
    (port,) = _peer_ports(1)
    home = run_dir / "bentoml-home"  # its model store and config, away from ~/bentoml
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "RF_BENCH_PLAN": str(run_dir / "plan.json"),
        "RF_BENCH_MODELS": ",".join(served),
        "RF_BENCH_WORKERS": str(workers),
        "RF_BENCH_MAX_BATCH_SIZE": str(max_batch_size),
        "RF_BENCH_MAX_LATENCY_MS": str(max_latency_ms),
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "True",
    }
    argv = [
        str(py.parent / "bentoml"),
        "serve",
        "peer_bentoml:RaceService",
        "--working-dir",
        str(ROOT / "bench"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = procs.start("bentoml", argv, run_dir / "logs" / "bentoml.log", env=env)
    s = Served(
        name="bentoml",
        target=f"127.0.0.1:{port}",
        procs=[proc],
        protocol="http",
        http_format="bentoml",
        cleanup=[home],
        metrics_url=f"http://127.0.0.1:{port}/metrics",
        batch_metric="bentoml_service_adaptive_batch_size",  # requests per batch, per API
    )
    # the CLI's group and its workers' (own sessions)
    _wait_counting_groups(s, lambda: wait_http_ok(f"http://{s.target}/readyz", timeout, proc))
    s.info = {
        "versions": peer_versions(py, ["bentoml", "torch", "scikit-learn", "numpy"]),
        "models": served,
        "protocol": "HTTP/JSON (BentoML API: POST /<model> {'x': rows})",
        "settings": {
            "adaptive_batching": True,
            "max_batch_size": max_batch_size,
            "max_latency_ms": max_latency_ms,
            "workers": workers,
        },
    }
    return s


def start_rayserve(
    plan: dict,
    run_dir: pathlib.Path,
    models: list[str],
    *,
    max_batch_size: int = 64,
    batch_wait_timeout_s: float = 0.002,
    timeout: float = 240.0,
) -> Served:
    """`bench/peer_rayserve.py`: a local Ray head (2 CPUs) + Serve, `@serve.batch` per model."""
    py = ensure_venv("rayserve", run_dir / "logs" / "rayserve-install.log")
    served = http_peer_models(plan, models)
    if not served:
        raise RuntimeError("no model Ray Serve can serve in this run")
    (port,) = _peer_ports(1)
    ready = run_dir / "rayserve.ready"
    ready.unlink(missing_ok=True)
    argv = [
        str(py),
        str(ROOT / "bench" / "peer_rayserve.py"),
        "--plan",
        str(run_dir / "plan.json"),
        "--models",
        ",".join(served),
        "--port",
        str(port),
        "--max-batch-size",
        str(max_batch_size),
        "--batch-wait-timeout-s",
        str(batch_wait_timeout_s),
        "--ready-file",
        str(ready),
    ]
    env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}
    proc = procs.start("rayserve", argv, run_dir / "logs" / "rayserve.log", env=env)
    s = Served(
        name="rayserve",
        target=f"127.0.0.1:{port}",
        procs=[proc],
        protocol="http",
        http_format="rayserve",
    )
    # the driver's group, and each actor's (replicas, proxy)
    _wait_counting_groups(
        s, lambda: procs.wait_for("Ray Serve ready file", ready.exists, timeout, proc)
    )
    s.info = {
        "versions": peer_versions(py, ["ray", "torch", "scikit-learn", "numpy"]),
        "models": served,
        "protocol": "HTTP/JSON (Serve route: POST /<model> {'x': rows})",
        "settings": {
            "serve_batch_max_batch_size": max_batch_size,
            "batch_wait_timeout_s": batch_wait_timeout_s,
            "max_ongoing_requests": 256,
            "num_cpus": 2,
            "replicas": 1,
        },
    }
    return s
