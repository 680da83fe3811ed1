"""One benchmark run: RunnerFleet beside its limits and its peers, same models, same machine.

    python -m bench.harness --quick      # make bench-quick: under 3 minutes
    python -m bench.harness --full       # make bench: longer windows, perf_analyzer everywhere
    python -m bench.harness --smoke      # seconds: RunnerFleet + in-process + bare grpcio only

Systems, in this order, each started, verified against the in-process reference output (same
weights), loaded, and stopped before the next one starts:

  inprocess  the stored model called in-process at a sweep of batch sizes (bench/inprocess.py)
  bare       a bare grpcio ModelInfer server, no batching (bench/bare_server.py)
  worker     a RunnerFleet worker called directly
  cluster1   RunnerFleet gateway + 1 worker        cluster2   gateway + 2 workers
  mlserver   MLServer 1.7, scikit-learn runtime, adaptive batching (own venv; iris only)
  triton     Triton via PyTriton 0.7, dynamic batcher (own venv)

Load: bench/loadgen.py (asyncio tritonclient, its own process) for every system, and Triton's
perf_analyzer where the server supports it (not MLServer: it has no ModelConfig). A peer that
cannot be installed or started is recorded with the reason and skipped. Writes
`<out-dir>/latest.json`, the PNG plots beside it and the markdown report (BENCHMARKS.md for
--quick/--full; inside the out dir for --smoke, so `make test` never overwrites real figures),
and prints the targets table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import traceback

import numpy as np

from bench import peers, procs, report

ROOT = pathlib.Path(__file__).resolve().parent.parent
PY = sys.executable

ALL_SYSTEMS = [
    "inprocess", "bare", "worker", "cluster1", "cluster2", "mlserver", "triton",
    "cluster1_http", "triton_http",
]  # fmt: skip
# HTTP/REST rows: the cluster's gateway and PyTriton's HTTP endpoint, beside their gRPC rows.
HTTP_SYSTEMS = {"cluster1_http": "cluster1", "triton_http": "triton"}
ALL_MODELS = ["iris_clf", "heavy_mlp", "echo"]


@dataclasses.dataclass
class Profile:
    name: str
    systems: list[str]
    models: list[str]
    concurrency: list[int]
    echo_concurrency: list[int]
    duration: float
    warmup: float
    inproc_seconds: float
    # perf_analyzer: {model: [concurrency...]} on these systems; empty = not run
    pa_models: dict[str, list[int]]
    pa_systems: list[str]
    pa_interval_ms: int = 1000
    pa_trials: int = 3
    # (system, model) pairs not measured in this profile, to stay within its time
    skip: tuple[tuple[str, str], ...] = ()
    markdown: str = "BENCHMARKS.md"
    # in-process batch sizes per model; None = bench/inprocess.py's full sweep
    inproc_batches: dict[str, list[int]] | None = None
    # HTTP/REST rows (HTTP_SYSTEMS): these models at these concurrencies
    http_models: tuple[str, ...] = ("iris_clf", "heavy_mlp")
    http_concurrency: tuple[int, ...] = (16,)


PROFILES = {
    "smoke": Profile(
        name="smoke",
        systems=["inprocess", "bare", "worker", "cluster1", "cluster2", "cluster1_http"],
        models=["iris_clf", "echo"],
        concurrency=[1, 4],
        echo_concurrency=[1],
        duration=0.3,
        warmup=0.1,
        inproc_seconds=0.05,
        pa_models={},
        pa_systems=[],
        skip=(("cluster2", "echo"),),
        markdown="",  # inside the out dir
        inproc_batches={"iris_clf": [1, 64, 1024], "heavy_mlp": [1, 64]},
        http_concurrency=(4,),  # beside the smoke's gRPC c=4
    ),
    "quick": Profile(
        name="quick",
        systems=ALL_SYSTEMS,
        models=ALL_MODELS,
        concurrency=[1, 4, 16, 64],
        echo_concurrency=[1, 4],
        duration=1.0,
        warmup=0.25,
        inproc_seconds=0.25,
        pa_models={"iris_clf": [16, 64]},
        pa_systems=["cluster1", "triton"],
        pa_interval_ms=800,
        pa_trials=3,
        skip=(("cluster2", "echo"),),
        inproc_batches={"iris_clf": [1, 64, 1024, 4096], "heavy_mlp": [1, 16, 64, 256]},
    ),
    "full": Profile(
        name="full",
        systems=ALL_SYSTEMS,
        models=ALL_MODELS,
        concurrency=[1, 4, 16, 64],
        echo_concurrency=[1, 4, 16],
        duration=5.0,
        warmup=1.0,
        inproc_seconds=2.0,
        pa_models={"iris_clf": [1, 4, 16, 64], "heavy_mlp": [1, 16, 64]},
        pa_systems=["bare", "worker", "cluster1", "cluster2", "triton"],
        pa_interval_ms=2000,
        pa_trials=3,
    ),
}


def _busy_cpu_s() -> float:
    """Busy CPU seconds of the whole machine since boot (/proc/stat), all cores summed."""
    try:
        fields = pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return float("nan")
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    """CPU seconds of this harness and every process it started and reaped."""
    import resource

    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _loadgen_argv(served: peers.Served, model: str, spec: dict, concurrency: str) -> list[str]:
    """The load generator's command line up to the concurrency list (callers add the rest)."""
    return [
        PY,
        "-m",
        "bench.loadgen",
        "--protocol",
        served.protocol,
        "--target",
        served.target,
        "--model",
        model,
        "--input-name",
        spec["input_name"],
        "--datatype",
        spec["datatype"],
        "--shape",
        ",".join(str(d) for d in spec["request_shape"]),
        "--concurrency",
        concurrency,
    ]


def _run_py(args: list[str], *, env: dict, timeout: float, log_path: pathlib.Path) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as f:
        f.write(("\n$ " + " ".join(args) + "\n").encode())
        f.flush()
        r = subprocess.run(
            args,
            stdout=f,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            timeout=timeout,
            cwd=str(ROOT),
            check=False,
        )
    if r.returncode != 0:
        tail = log_path.read_bytes()[-1500:].decode("utf-8", "replace")
        raise RuntimeError(f"{' '.join(args[1:4])} exited {r.returncode}:\n{tail}")


def output_paths(
    out_dir: str, markdown: str, profile_markdown: str, smoke_dir: str | None
) -> tuple[pathlib.Path, pathlib.Path]:
    """Where a run writes: `--out-dir` (default bench/results; a smoke run, `smoke_dir` set,
    under bench/results/tmp/) and `--markdown` (default the profile's file in the repository,
    else BENCHMARKS.md in the output folder)."""
    if out_dir:
        out = pathlib.Path(out_dir).resolve()
    elif smoke_dir:
        out = ROOT / "bench" / "results" / "tmp" / smoke_dir
    else:
        out = ROOT / "bench" / "results"
    if markdown:
        return out, pathlib.Path(markdown).resolve()
    return out, (ROOT / profile_markdown if profile_markdown else out / "BENCHMARKS.md")


def stop_all_on_sigterm() -> None:
    """On SIGTERM, stop every process this run started (bench/procs.py), then exit."""

    def on_term(signum, frame):
        procs.stop_all()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)


# What a run folder no longer needs once the run ends: the store (68 MB of heavy MLP) and the
# peers' workspaces; the logs and raw JSON stay (gitignored) for diagnosis.
RUN_DIR_SCRATCH = (
    "store",
    "pytriton-ws",
    "mlserver-repo",
    "mlserver-metrics",
    "mlserver-envs",
    "bentoml-home",
)


def clear_run_dir(run_dir: pathlib.Path, patterns: tuple[str, ...] = ("*.pt",)) -> None:
    """Remove `RUN_DIR_SCRATCH` and the files matching `patterns` (model exports) in `run_dir`."""
    for sub in RUN_DIR_SCRATCH:
        shutil.rmtree(run_dir / sub, ignore_errors=True)
    for pattern in patterns:
        for f in run_dir.glob(pattern):
            f.unlink(missing_ok=True)


class Harness:
    def __init__(
        self,
        profile: Profile,
        out_dir: pathlib.Path,
        markdown: pathlib.Path,
        only: list[str] | None,
        mlserver_batch_time_s: float,
        triton_delay_us: int,
    ):
        self.p = profile
        self.out_dir = out_dir
        self.markdown = markdown
        stamp = time.strftime("%Y%m%d-%H%M%S")
        tmp_root = ROOT / "bench" / "results" / "tmp"
        old_runs = (
            sorted(tmp_root.glob("run-*"), key=lambda q: q.stat().st_mtime)
            if tmp_root.exists()
            else []
        )
        for old in old_runs[:-5]:  # keep the last few runs' logs, no more
            shutil.rmtree(old, ignore_errors=True)
        self.run_dir = (
            ROOT / "bench" / "results" / "tmp" / f"run-{profile.name}-{stamp}-{os.getpid()}"
        )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logs = self.run_dir / "logs"
        self.env = {"RUNNERFLEET_HOME": str(self.run_dir / "store"), "PYTHONPATH": str(ROOT)}
        self.systems = [s for s in profile.systems if not only or s in only]
        self.mlserver_batch_time_s = mlserver_batch_time_s
        self.triton_delay_us = triton_delay_us
        self.profile_specs: list[tuple[str, str, int]] = []
        self.profile_seconds = 5.0
        self.plan: dict = {}
        self.results: dict = {
            "meta": {},
            "inprocess": {},
            "systems": {},
        }
        self.pa: tuple[pathlib.Path, dict] | None = None
        self.pa_error = ""

    # ---- helpers -------------------------------------------------------------------------
    def conc_for(self, model: str, system: str = "") -> list[int]:
        if system in HTTP_SYSTEMS:
            return list(self.p.http_concurrency)
        return self.p.echo_concurrency if model == "echo" else self.p.concurrency

    def http_models(self) -> list[str]:
        return [m for m in self.p.models if m in self.p.http_models]

    def loadgen(self, system: str, served: peers.Served, model: str) -> dict:
        spec = self.plan["models"][model]
        out = self.run_dir / f"loadgen-{system}-{model}.json"
        vout = self.run_dir / f"verify-{system}-{model}.npy"
        conc = self.conc_for(model, system)
        args = [
            *_loadgen_argv(served, model, spec, ",".join(str(c) for c in conc)),
            "--duration",
            str(self.p.duration),
            "--warmup",
            str(self.p.warmup),
            "--verify-in",
            spec["verify_in"],
            "--verify-out",
            str(vout),
            "--out",
            str(out),
        ]
        for t in served.stats_targets:
            args += ["--stats-target", t]
        for k, v in served.headers:
            args += ["--stats-header", f"{k}:{v}"]
        if served.metrics_url:
            args += ["--metrics-url", served.metrics_url, "--batch-metric", served.batch_metric]
        for g in served.pgids:
            args += ["--cpu-pgid", str(g)]
        budget = len(conc) * (self.p.duration + self.p.warmup + 35) + 60
        try:
            _run_py(args, env=self.env, timeout=budget, log_path=self.logs / "loadgen.log")
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            if not out.exists():
                return {"error": str(e)[-800:]}
        res = json.loads(out.read_text())
        res["verified"] = self.verify(model, vout) if vout.exists() else "no answer to verify"
        return res

    def verify(self, model: str, got_path: pathlib.Path) -> bool | str:
        ref = np.load(self.plan["models"][model]["verify_ref"])
        got = np.load(got_path)
        if got.size != ref.size:
            return f"shape {list(got.shape)} != reference {list(ref.shape)}"
        got = got.reshape(ref.shape)
        if ref.dtype.kind in "iub":
            ok = bool(np.array_equal(got.astype(ref.dtype), ref))
        else:
            ok = bool(np.allclose(got, ref, rtol=1e-3, atol=1e-4))
        return True if ok else "output differs from the in-process reference"

    def perf_analyzer_tool(self) -> tuple[pathlib.Path, dict] | None:
        """perf_analyzer and the env it needs, looked for once per run; None where it cannot
        run here (the reason in `pa_error`, which the results record)."""
        if self.pa is None and not self.pa_error:
            from bench import perf_analyzer as pa_mod

            try:
                self.pa = pa_mod.find(self.logs / "perf_analyzer-install.log")
            except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                self.pa_error = f"{type(e).__name__}: {e}"[:500]
        return self.pa

    def perf_analyzer(self, system: str, served: peers.Served, model: str) -> list[dict] | dict:
        if system not in self.p.pa_systems or model not in self.p.pa_models:
            return []
        tool = self.perf_analyzer_tool()
        if tool is None:
            return {"error": self.pa_error}
        from bench import perf_analyzer as pa_mod

        shape = pa_mod.shape_for(self.plan["models"][model])
        points = []
        for c in self.p.pa_models[model]:
            try:
                points.append(
                    pa_mod.run(
                        tool[0],
                        tool[1],
                        target=served.target,
                        model=model,
                        concurrency=c,
                        out_csv=self.run_dir / f"pa-{system}-{model}-{c}.csv",
                        log=self.logs / "perf_analyzer.log",
                        interval_ms=self.p.pa_interval_ms,
                        max_trials=self.p.pa_trials,
                        shape=shape,
                        headers=served.headers,
                        timeout=self.p.pa_interval_ms / 1000 * (self.p.pa_trials + 2) + 60,
                    )
                )
            except Exception as e:  # noqa: BLE001
                points.append({"concurrency": c, "error": str(e)[-400:]})
        return points

    def measure(self, system: str, served: peers.Served, models: list[str]) -> None:
        entry = self.results["systems"].setdefault(system, {"status": "ok", "models": {}})
        entry["info"] = served.info
        for model in models:
            if (system, model) in self.p.skip or model not in self.plan["models"]:
                continue
            log(f"  {system} / {model}: loadgen c={self.conc_for(model, system)}")
            lg = self.loadgen(system, served, model)
            m = {"loadgen": lg.get("points", []), "verified": lg.get("verified")}
            for k in ("error", "stats_errors"):
                if lg.get(k):
                    m[k] = lg[k]
            pa = self.perf_analyzer(system, served, model)
            if pa:
                log(f"  {system} / {model}: perf_analyzer c={self.p.pa_models[model]}")
                m["perf_analyzer"] = pa
            spec = next(
                (c for (ps, pm, c) in self.profile_specs if (ps, pm) == (system, model)), None
            )
            if spec is not None:
                m["profile"] = self.profile(system, served, model, spec)
            entry["models"][model] = m
            brief = ", ".join(
                f"c={p['concurrency']}: {p['rps']:.0f}/s p99 {p['p99_ms']:.1f}ms"
                if p.get("requests")
                else f"c={p['concurrency']}: {p.get('errors')} errors ({p.get('first_error')})"
                for p in m["loadgen"]
            )
            log(f"    {brief or m.get('error', 'no figures')}  verified={m['verified']}")

    def measure_http(self, system: str, served: peers.Served, http_port: object) -> None:
        """The HTTP/REST row of a running system: the same server, called over HTTP."""
        if not http_port:
            self.failed(system, "the server reported no HTTP port")
            return
        over_http = dataclasses.replace(
            served, name=system, target=f"127.0.0.1:{http_port}", protocol="http"
        )
        self.measure(system, over_http, self.http_models())

    def profile(self, system: str, served: peers.Served, model: str, conc: int) -> dict:
        """One more load window at `conc` while py-spy samples every process of the system."""
        from bench import profile as prof

        if not served.pids:
            return {"error": f"no process of {system} to profile"}
        log(f"  {system} / {model}: py-spy on {', '.join(served.pids)} at c={conc}")
        try:
            exe = prof.ensure_py_spy(self.logs / "py-spy-install.log")
        except Exception as e:  # noqa: BLE001
            return {"error": f"py-spy unavailable: {e}"[:400]}
        secs = self.profile_seconds
        raws = {role: self.run_dir / f"py-spy-{system}-{model}-{role}.txt" for role in served.pids}
        spies = {
            role: prof.start_record(exe, pid, secs, raws[role], self.logs / "py-spy.log")
            for role, pid in served.pids.items()
        }
        spec = self.plan["models"][model]
        out = self.run_dir / f"loadgen-profile-{system}-{model}.json"
        args = [
            *_loadgen_argv(served, model, spec, str(conc)),
            "--duration",
            str(secs + 0.5),
            "--warmup",
            "0",
            "--out",
            str(out),
        ]
        result: dict = {"concurrency": conc, "seconds": secs, "processes": {}}
        try:
            _run_py(args, env=self.env, timeout=secs + 90, log_path=self.logs / "loadgen.log")
            pts = json.loads(out.read_text()).get("points", [])
            result["loadgen"] = pts[0] if pts else None
        except Exception as e:  # noqa: BLE001
            result["loadgen_error"] = str(e)[-300:]
        for role, sp in spies.items():
            try:
                sp.wait(timeout=secs + 60)
            except subprocess.TimeoutExpired:
                sp.kill()
                sp.wait(timeout=10)
            if raws[role].exists():
                result["processes"][role] = {**prof.digest(raws[role]), "raw": str(raws[role])}
            else:
                result["processes"][role] = {"error": "py-spy wrote nothing; see py-spy.log"}
        return result

    def failed(self, system: str, reason: str) -> None:
        log(f"  {system}: skipped: {reason.splitlines()[0][:200] if reason else ''}")
        self.results["systems"][system] = {
            "status": "failed",
            "reason": reason[-1500:],
            "models": {},
        }

    # ---- systems -------------------------------------------------------------------------
    def prepare(self) -> None:
        """Seed a fresh store, export the peers' copies, and (same process) the in-process sweep."""
        models = ",".join(self.p.models)
        log(
            f"preparing models {models} in a fresh store under {self.run_dir}"
            + (", then the in-process sweep" if "inprocess" in self.systems else "")
        )
        out = self.run_dir / "inprocess.json"
        args = [PY, "-m", "bench.prepare", "--out-dir", str(self.run_dir), "--models", models]
        if "inprocess" in self.systems:
            args += ["--inprocess-out", str(out), "--inprocess-seconds", str(self.p.inproc_seconds)]
            if self.p.inproc_batches:
                args += ["--inprocess-batches", json.dumps(self.p.inproc_batches)]
        _run_py(args, env=self.env, timeout=900, log_path=self.logs / "prepare.log")
        self.plan = json.loads((self.run_dir / "plan.json").read_text())
        if "inprocess" in self.systems:
            if out.exists():
                self.results["inprocess"] = json.loads(out.read_text())
                self.results["systems"]["inprocess"] = {"status": "ok", "models": {}}
            else:
                self.failed("inprocess", "the in-process sweep wrote nothing; see prepare.log")

    def run_bare(self) -> None:
        log("bare grpcio server")
        pf = self.run_dir / "bare.port"
        proc = procs.start(
            "bare",
            [
                PY,
                "-m",
                "bench.bare_server",
                "--plan",
                str(self.run_dir / "plan.json"),
                "--port-file",
                str(pf),
            ],
            self.logs / "bare.log",
            env=self.env,
            cwd=str(ROOT),
        )
        served = peers.Served(name="bare", target="", procs=[proc])
        try:
            info = procs.wait_port_file(pf, 120, proc)
            served.target = f"127.0.0.1:{info['grpc_port']}"
            served.pids = {"bare": int(info.get("pid", proc.pid))}
            procs.wait_grpc_ready(served.target, 60, proc, health=False, model=self.p.models[0])
            served.info = {"server": "grpc.aio, inline model call, no batching"}
            self.measure("bare", served, self.p.models)
        except Exception as e:  # noqa: BLE001
            self.failed("bare", f"{type(e).__name__}: {e}")
        finally:
            served.stop()

    def _start_rf(self, name: str, role: str, *args: str) -> tuple[procs.Proc, pathlib.Path]:
        """`runnerfleet ROLE ARGS` on 127.0.0.1, port 0, WARNING logs; its port file."""
        pf = self.run_dir / f"{name}.port"
        argv = [
            str(pathlib.Path(PY).parent / "runnerfleet"), role, *args,
            "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0",
            "--port-file", str(pf), "--log-level", "WARNING",
        ]  # fmt: skip
        return procs.start(name, argv, self.logs / f"{name}.log", env=self.env, cwd=str(ROOT)), pf

    def _start_worker(self, name: str, *extra: str) -> tuple[procs.Proc, pathlib.Path]:
        tags = ",".join(m["tag"] for m in self.plan["models"].values())
        return self._start_rf(name, "worker", "--models", tags, "--device", "cpu", *extra)

    def _start_gateway(
        self, name: str, workers: list[str], *extra: str
    ) -> tuple[procs.Proc, pathlib.Path]:
        return self._start_rf(name, "gateway", "--workers", ",".join(workers), *extra)

    def _ready_worker(self, name: str, *extra: str) -> tuple[str, dict, procs.Proc]:
        """A worker serving the plan's models, once healthy; ``extra``: more CLI flags."""
        proc, pf = self._start_worker(name, *extra)
        try:
            info = procs.wait_port_file(pf, 180, proc)
            target = f"127.0.0.1:{info['grpc_port']}"
            procs.wait_grpc_ready(target, 180, proc, health=True)
        except Exception:
            procs.stop(proc)
            raise
        return target, info, proc

    def _ready_gateway(
        self, name: str, workers: list[str], *extra: str
    ) -> tuple[str, dict, procs.Proc]:
        """A gateway in front of ``workers``, once it routes every model; ``extra``: flags."""
        proc, pf = self._start_gateway(name, workers, *extra)
        try:
            info = procs.wait_port_file(pf, 120, proc)
            target = f"127.0.0.1:{info['grpc_port']}"
            procs.wait_grpc_ready(target, 120, proc, health=True)
            for m in self.p.models:  # the gateway routes only once its workers are SERVING
                procs.wait_grpc_ready(target, 60, proc, health=False, model=m)
        except Exception:
            procs.stop(proc)
            raise
        return target, info, proc

    def run_runnerfleet(self) -> None:
        """worker, cluster1, cluster2, in that order; only the measured system's processes run.

        worker1 serves all three (warm from the previous), so: worker1 alone; + gateway1;
        gateway1 stopped, + worker2 + gateway2 (both workers behind it).
        """
        wanted = [
            s for s in ("worker", "cluster1", "cluster2", "cluster1_http") if s in self.systems
        ]
        if not wanted:
            return
        log(f"RunnerFleet: {', '.join(wanted)}")
        base_info = {"worker_flags": "defaults (--device cpu)"}
        started: list[procs.Proc] = []
        try:
            try:
                w1 = self._ready_worker("worker1")
            except Exception as e:  # noqa: BLE001
                for sysname in wanted:
                    self.failed(sysname, f"worker: {type(e).__name__}: {e}")
                return
            started.append(w1[2])
            if "worker" in wanted:
                served = peers.Served(
                    name="worker",
                    target=w1[0],
                    stats_targets=[w1[0]],
                    info={**base_info, "workers": 1},
                    pids={"worker1": int(w1[1]["pid"])},
                    pgids=[w1[2].pid],
                )
                self.measure("worker", served, self.p.models)
            for sysname, n in (("cluster1", 1), ("cluster2", 2)):
                http_too = n == 1 and "cluster1_http" in wanted
                if sysname not in wanted and not http_too:
                    continue
                try:
                    workers = [w1]
                    if n == 2:
                        w2 = self._ready_worker("worker2")
                        started.append(w2[2])
                        workers.append(w2)
                    gw = self._ready_gateway(f"gateway{n}", [w[0] for w in workers])
                except Exception as e:  # noqa: BLE001
                    for name in (sysname, "cluster1_http") if http_too else (sysname,):
                        self.failed(name, f"{type(e).__name__}: {e}")
                    continue
                served = peers.Served(
                    name=sysname,
                    target=gw[0],
                    stats_targets=[w[0] for w in workers],
                    info={**base_info, "workers": n, "gateway": "defaults"},
                    pids={
                        "gateway": int(gw[1]["pid"]),
                        **{f"worker{i + 1}": int(w[1]["pid"]) for i, w in enumerate(workers)},
                    },
                    pgids=[gw[2].pid, *(w[2].pid for w in workers)],
                )
                try:
                    if sysname in wanted:
                        self.measure(sysname, served, self.p.models)
                    if http_too:
                        self.measure_http("cluster1_http", served, gw[1].get("http_port"))
                finally:
                    procs.stop(gw[2])
        finally:
            for p in reversed(started):
                procs.stop(p)

    def run_mlserver(self) -> None:
        log("MLServer (installing into its own venv if needed)")
        try:
            s = peers.start_mlserver(
                self.plan,
                self.run_dir,
                self.p.models,
                max_batch_size=64,
                max_batch_time_s=self.mlserver_batch_time_s,
            )
        except Exception as e:  # noqa: BLE001
            self.failed("mlserver", f"{type(e).__name__}: {e}")
            return
        try:
            self.measure("mlserver", s, s.info.get("models", []))
        finally:
            s.stop()

    def run_triton(self) -> None:
        log("Triton via PyTriton (installing into its own venv if needed)")
        try:
            s = peers.start_pytriton(
                self.plan,
                self.run_dir,
                self.p.models,
                max_batch_size=64,
                queue_delay_us=self.triton_delay_us,
            )
        except Exception as e:  # noqa: BLE001
            for name in ("triton", "triton_http"):
                if name in self.systems:
                    self.failed(name, f"{type(e).__name__}: {e}")
            return
        try:
            if "triton" in self.systems:
                self.measure("triton", s, self.p.models)
            if "triton_http" in self.systems:
                self.measure_http("triton_http", s, s.http_target.rpartition(":")[2])
        finally:
            s.stop(timeout=8.0)  # PyTriton's own shutdown is slow; what's left is killed

    # ---- the run -------------------------------------------------------------------------
    def run(self) -> dict:
        t0 = time.time()
        busy0, own0 = _busy_cpu_s(), _own_cpu_s()
        self.results["meta"] = report.machine_meta(self.p.name)
        self.results["meta"]["loadavg_start"] = os.getloadavg()
        self.results["meta"]["settings"] = {
            "concurrency": self.p.concurrency,
            "echo_concurrency": self.p.echo_concurrency,
            "duration_s": self.p.duration,
            "warmup_s": self.p.warmup,
            "perf_analyzer": {
                "models": self.p.pa_models,
                "systems": self.p.pa_systems,
                "interval_ms": self.p.pa_interval_ms,
                "trials": self.p.pa_trials,
            },
            "mlserver_max_batch_time_s": self.mlserver_batch_time_s,
            "triton_max_queue_delay_us": self.triton_delay_us,
        }
        self.prepare()
        self.results["plan"] = {
            k: {kk: v[kk] for kk in ("tag", "method", "datatype", "request_shape", "peer_kind")}
            for k, v in self.plan["models"].items()
        }
        steps = [
            ("bare", self.run_bare),
            ("runnerfleet", self.run_runnerfleet),
            ("mlserver", self.run_mlserver),
            ("triton", self.run_triton),
        ]
        for name, fn in steps:
            if (
                name == "runnerfleet"
                or name in self.systems
                or (name == "triton" and "triton_http" in self.systems)
            ):
                try:
                    fn()
                except Exception as e:  # noqa: BLE001 - one system never sinks the run
                    self.failed(name, traceback.format_exc()[-1500:] or str(e))
        if self.pa_error:
            self.results["meta"]["perf_analyzer_error"] = self.pa_error
        self.results["meta"]["loadavg_end"] = os.getloadavg()
        self.results["meta"]["wall_s"] = wall = time.time() - t0
        # Noise: CPU the rest of the machine used while we ran (busy CPU minus ours), in cores.
        self.results["meta"]["other_cores"] = max(
            0.0, ((_busy_cpu_s() - busy0) - (_own_cpu_s() - own0)) / wall
        )
        self.results["targets"] = report.evaluate_targets(self.results)
        return self.results

    def write(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        js = self.out_dir / "latest.json"
        self.results["meta"]["results_json"] = (
            os.path.relpath(js, ROOT) if js.is_relative_to(ROOT) else str(js)
        )
        (self.out_dir / "latest.json").write_text(json.dumps(self.results, indent=1, default=str))
        plots = report.plots(self.results, self.out_dir)
        self.results["meta"]["plots"] = [str(p) for p in plots]
        (self.out_dir / "latest.json").write_text(json.dumps(self.results, indent=1, default=str))
        md = report.markdown(self.results, self.markdown.parent, plots)
        self.markdown.write_text(report.keep_chaos_section(md, self.markdown))
        print(report.targets_table(self.results["targets"]), flush=True)
        log(
            f"wrote {self.out_dir / 'latest.json'}, {self.markdown}, "
            f"{', '.join(p.name for p in plots)} in {self.results['meta']['wall_s']:.0f}s"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--quick", action="store_true", help="all systems, short windows (< 3 min)")
    g.add_argument("--full", action="store_true", help="all systems, long windows")
    g.add_argument("--smoke", action="store_true", help="RunnerFleet + limits, seconds")
    p.add_argument(
        "--out-dir", default="", help="default bench/results (smoke: bench/results/tmp/smoke)"
    )
    p.add_argument("--markdown", default="", help="default BENCHMARKS.md (smoke: in --out-dir)")
    p.add_argument("--only", default="", help="comma-separated systems: " + ",".join(ALL_SYSTEMS))
    p.add_argument(
        "--mlserver-max-batch-time",
        type=float,
        default=0.002,
        help="MLServer adaptive batching max_batch_time, seconds",
    )
    p.add_argument(
        "--triton-queue-delay-us",
        type=int,
        default=0,
        help="Triton dynamic batcher max_queue_delay_microseconds (0: its default)",
    )
    p.add_argument("--keep-tmp", action="store_true", help="keep the run folder (logs, store)")
    p.add_argument(
        "--profile",
        default="",
        metavar="SYSTEM:MODEL:C[,...]",
        help="py-spy the system's processes during one more window at concurrency C "
        "(RunnerFleet systems and bare), e.g. cluster1:iris_clf:64",
    )
    p.add_argument("--profile-seconds", type=float, default=5.0)
    a = p.parse_args(argv)
    specs = []
    for item in [x for x in a.profile.split(",") if x]:
        try:
            ps, pm, pc = item.split(":")
            specs.append((ps, pm, int(pc)))
        except ValueError:
            p.error(f"--profile wants SYSTEM:MODEL:CONCURRENCY, got {item!r}")
    name = "quick" if a.quick else "full" if a.full else "smoke"
    prof = PROFILES[name]
    smoke_dir = "smoke" if name == "smoke" else None
    out_dir, markdown = output_paths(a.out_dir, a.markdown, prof.markdown, smoke_dir)
    only = [s for s in a.only.split(",") if s] or None
    stop_all_on_sigterm()
    h = Harness(prof, out_dir, markdown, only, a.mlserver_max_batch_time, a.triton_queue_delay_us)
    h.profile_specs, h.profile_seconds = specs, a.profile_seconds
    try:
        h.run()
        h.write()
    finally:
        procs.stop_all()
        if not a.keep_tmp:
            clear_run_dir(h.run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
