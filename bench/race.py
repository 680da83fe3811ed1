"""The race: RunnerFleet against each peer at its best, repeated, interleaved, every answer checked.

    python -m bench.race --full     # make bench: 5 s windows, 3 repeats, every peer configuration
    python -m bench.race --quick    # make bench-quick: same machinery, short windows, fewer points
    python -m bench.race --smoke    # seconds: RunnerFleet + the limits (the integration test)

One run: `bench/prepare.py` seeds a fresh store with every model (iris, heavy MLP, echo,
ResNet-18, HistGradientBoosting, TransformerEncoder), exports the same weights for the peers
(hash-checked), writes pools of distinct requests with their in-process answers, and runs the
in-process sweep (the model at its best batch) and the memory-bandwidth probe. Then, for each
repeat, every entry (a system in one configuration: `ENTRIES` below) in a shuffled order is
started (cold start timed: spawn to SERVING), checked with one fixed input, loaded with
`bench/race_load.py` (closed loop, open loop, row counts, a model mix; distinct inputs, every
answer checked) and perf_analyzer (stability check on; closed loop and `--request-rate-range`),
its processes' RSS and CPU read from /proc, and stopped before the next starts. Entries called
over HTTP (`rf-http`, `triton-*-http`, `bentoml*`, `rayserve`) get the same load as JSON over
HTTP (`race_load.py`'s aiohttp client), on the profile's `http_models`.

Writes `<out>/race.json` (raw: every repeat of every point), the plots beside it, and the
markdown report (`bench/race_report.py`: medians and min-max spread over the repeats, the best
configuration of each peer per point, ratios, knees, targets) into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import random
import sys
import time
import traceback

from bench import harness, peers, procs, race_report

ROOT = harness.ROOT
PY = harness.PY
log = harness.log

ALL_MODELS = ["iris_clf", "heavy_mlp", "echo", "resnet18", "hgb", "transformer"]
TRITON_DELAYS_US = [0, 100, 500, 2000]


def _entries() -> dict[str, dict]:
    out: dict[str, dict] = {
        "bare": {"kind": "bare"},
        "zerocopy": {"kind": "zerocopy", "models": ["echo"]},
        "rf": {"kind": "rf", "workers": 1},
        "rf2": {"kind": "rf", "workers": 2},
        # the standard library's event loop in both processes (protos/event_loop.py): what
        # uvloop, the default, is worth, measured in the same run
        "rf-asyncio": {"kind": "rf", "workers": 1, "event_loop": "asyncio"},
        # the gateway -> worker hop over gRPC, not the worker's Unix socket
        # (api_gateway/local_link.py off): what the local link is worth, in the same run
        "rf-grpc": {
            "kind": "rf",
            "workers": 1,
            "models": ["iris_clf", "heavy_mlp"],
            "gateway_flags": ("--no-forward-local-link",),
        },
        # the gateway -> worker hop over gRPC only (api_gateway/shm_hop.py off): what the
        # shared-memory hop is worth for the big tensors, measured in the same run
        "rf-nohop": {
            "kind": "rf",
            "workers": 1,
            "models": ["echo"],
            "gateway_flags": ("--forward-shm-min-bytes", "0"),
        },
    }
    for d in TRITON_DELAYS_US:
        for i in (1, 2):
            out[f"triton-d{d}-i{i}"] = {"kind": "triton", "delay_us": d, "instances": i}
    for b in (True, False):
        for w in (0, 1):
            out[f"mlserver-{'ab' if b else 'nb'}-w{w}"] = {
                "kind": "mlserver",
                "adaptive": b,
                "parallel_workers": w,
            }
    # JSON over HTTP: RunnerFleet's gateway and Triton in KServe v2 JSON, BentoML and Ray Serve
    # in their own JSON bodies (bench/race_load.py), all with the same client.
    out["rf-http"] = {"kind": "rf", "workers": 1, "protocol": "http"}
    out["triton-d500-i1-http"] = {**out["triton-d500-i1"], "protocol": "http"}
    out["triton-d500-i2-http"] = {**out["triton-d500-i2"], "protocol": "http"}
    out["bentoml"] = {"kind": "bentoml", "workers": 1, "protocol": "http"}
    out["bentoml-w2"] = {"kind": "bentoml", "workers": 2, "protocol": "http"}
    out["rayserve"] = {"kind": "rayserve", "protocol": "http"}
    return out


def is_http(entry: str) -> bool:
    return ENTRIES[entry].get("protocol") == "http"


ENTRIES = _entries()


@dataclasses.dataclass
class RaceProfile:
    name: str
    entries: list[str]
    models: list[str]
    repeats: int
    duration_s: float
    warmup_s: float
    concurrency: dict[str, list[int]]  # model -> closed-loop levels (rows 1)
    rows: dict[str, list[int]]  # model -> row counts beyond 1, at rows_concurrency
    rows_concurrency: list[int]
    open_rates: dict[str, list[float]]  # model -> offered req/s (constant and Poisson)
    open_arrivals: list[str]
    mix: list[str]  # models sent round robin, one cluster
    mix_concurrency: list[int]
    http_models: list[str]  # the models HTTP entries serve (JSON bodies: no echo)
    min_samples: int  # closed loop: a window runs on until it holds this many (bounded)
    max_window_s: float
    inproc_seconds: float
    inproc_batches: dict[str, list[int]]
    pa_closed: dict[str, list[int]]
    pa_rates: dict[str, list[int]]
    pa_interval_ms: int
    pa_trials: int
    markdown: str = "BENCHMARKS.md"
    # HTTP entries' load shapes where they differ: {"concurrency"|"rows"|"open_rates": ...}
    http_points: dict = dataclasses.field(default_factory=dict)


PROFILES = {
    "smoke": RaceProfile(
        name="smoke",
        entries=["bare", "zerocopy", "rf", "rf-http"],
        models=["iris_clf", "echo", "hgb"],
        repeats=2,
        duration_s=0.3,
        warmup_s=0.1,
        concurrency={"iris_clf": [1, 4], "echo": [1], "hgb": [4]},
        rows={"iris_clf": [8]},
        rows_concurrency=[4],
        open_rates={"iris_clf": [100.0]},
        open_arrivals=["poisson"],
        mix=["iris_clf", "hgb"],
        mix_concurrency=[4],
        http_models=["iris_clf", "hgb"],
        min_samples=0,
        max_window_s=2.0,
        inproc_seconds=0.05,
        inproc_batches={"iris_clf": [1, 64], "hgb": [1, 64]},
        pa_closed={},
        pa_rates={},
        pa_interval_ms=500,
        pa_trials=3,
        markdown="",
    ),
    # Cut so `make bench-quick` fits in 5 minutes with every peer installed (issue 13): two
    # models and the echo, one configuration per peer, the closed loop at the levels the
    # targets name, one open-loop rate, no resnet18/hgb/transformer. `make bench` has the rest.
    "quick": RaceProfile(
        name="quick",
        entries=[
            "zerocopy",
            "rf",
            # one model instance: with two, PyTriton's second instance can connect to the
            # first's handshake socket before it listens (ECONNREFUSED) on a busy machine,
            # which failed the first start of triton-d500-i2 in 4 of 4 runs here
            "triton-d500-i1",
            "mlserver-ab-w0",
            "rf-http",
            # Triton's own HTTP endpoint, so RF HTTP vs Triton HTTP (issue 14) is in every run
            "triton-d500-i1-http",
            "bentoml",
            "rayserve",
        ],
        models=["iris_clf", "heavy_mlp", "echo"],
        repeats=1,
        duration_s=0.8,
        warmup_s=0.2,
        concurrency={"iris_clf": [1, 16, 64], "heavy_mlp": [16, 64], "echo": [4]},
        rows={"iris_clf": [8]},
        rows_concurrency=[16],
        open_rates={"iris_clf": [800.0]},
        open_arrivals=["poisson"],
        mix=["iris_clf", "heavy_mlp"],
        mix_concurrency=[16],
        http_models=["iris_clf", "heavy_mlp"],
        # JSON peers: the closed loop only (an open loop past a slow peer's knee waits out
        # its backlog), iris c 1/16/64 and the MLP at 16
        http_points={
            "concurrency": {"iris_clf": [1, 16, 64], "heavy_mlp": [16]},
            "rows": {},
            "open_rates": {},
        },
        min_samples=0,
        max_window_s=3.0,
        inproc_seconds=0.2,
        inproc_batches={"iris_clf": [1, 64, 1024], "heavy_mlp": [1, 64, 256]},
        pa_closed={"iris_clf": [16]},
        pa_rates={},
        pa_interval_ms=500,
        pa_trials=4,
    ),
    "full": RaceProfile(
        name="full",
        entries=[e for e in ENTRIES if e != "rf2"] + ["rf2"],
        models=ALL_MODELS,
        repeats=3,
        duration_s=5.0,
        warmup_s=1.0,
        concurrency={
            "iris_clf": [1, 4, 16, 64],
            "heavy_mlp": [1, 4, 16, 64],
            "echo": [1, 4, 16],
            "resnet18": [1, 4, 16],
            "hgb": [1, 16, 64],
            "transformer": [1, 16, 64],
        },
        rows={"iris_clf": [8, 64], "heavy_mlp": [8, 64], "hgb": [8, 64], "transformer": [8]},
        rows_concurrency=[16],
        open_rates={
            "iris_clf": [500.0, 1000.0, 2000.0, 3000.0, 4500.0],
            "heavy_mlp": [200.0, 400.0, 700.0, 1000.0],
        },
        open_arrivals=["constant", "poisson"],
        mix=["iris_clf", "heavy_mlp", "hgb", "transformer"],
        mix_concurrency=[16, 64],
        http_models=["iris_clf", "heavy_mlp", "hgb", "transformer"],
        min_samples=10_000,
        max_window_s=20.0,
        inproc_seconds=2.0,
        inproc_batches={},  # bench/inprocess.py's full sweep
        pa_closed={"iris_clf": [16, 64], "heavy_mlp": [64]},
        pa_rates={"iris_clf": [1000, 3000]},
        pa_interval_ms=2000,
        pa_trials=6,
    ),
}


def points_for(p: RaceProfile, models: list[str], http: bool = False) -> list[dict]:
    """Every load point for an entry serving `models`, in the order the load generator runs them.

    `http`: an entry called over HTTP, whose shapes the profile's `http_points` may change.
    """
    if http and p.http_points:
        p = dataclasses.replace(p, **p.http_points)
    base = {"duration_s": p.duration_s, "warmup_s": p.warmup_s}
    pts: list[dict] = []
    for m in models:
        pts.extend(
            {**base, "mode": "closed", "models": [m], "c": c, "rows": 1}
            for c in p.concurrency.get(m, [])
        )
        pts.extend(
            {**base, "mode": "closed", "models": [m], "c": c, "rows": r}
            for r in p.rows.get(m, [])
            for c in p.rows_concurrency
        )
        pts.extend(
            {**base, "mode": "open", "models": [m], "rate": rate, "arrival": arr, "rows": 1}
            for rate in p.open_rates.get(m, [])
            for arr in p.open_arrivals
        )
    if p.mix and all(m in models for m in p.mix):
        pts.extend(
            {**base, "mode": "closed", "models": list(p.mix), "c": c, "rows": 1}
            for c in p.mix_concurrency
        )
    for pt in pts:
        if pt["mode"] == "closed":
            pt["min_samples"], pt["max_duration_s"] = p.min_samples, p.max_window_s
    return pts


class Race:
    def __init__(self, p: RaceProfile, out_dir: pathlib.Path, markdown: pathlib.Path, seed: int):
        self.p = p
        self.out_dir, self.markdown, self.seed = out_dir, markdown, seed
        hp = harness.Profile(
            name=f"race-{p.name}",
            systems=["inprocess"],
            models=p.models,
            concurrency=[],
            echo_concurrency=[],
            duration=p.duration_s,
            warmup=p.warmup_s,
            inproc_seconds=p.inproc_seconds,
            pa_models={},
            pa_systems=[],
            inproc_batches=p.inproc_batches or None,
        )
        self.h = harness.Harness(hp, out_dir, markdown, None, 0.002, 0)
        self.run_dir, self.logs, self.env = self.h.run_dir, self.h.logs, self.h.env
        self.res: dict = {"meta": {}, "runs": [], "entries": {}, "not_measured": {}}

    # ---- starting an entry -----------------------------------------------------------------
    def _start_script(self, name: str, module: str, extra: list[str]) -> peers.Served:
        pf = self.run_dir / f"{name}.port"
        pf.unlink(missing_ok=True)
        proc = procs.start(
            name,
            [PY, "-m", module, "--port-file", str(pf), *extra],
            self.logs / f"{name}.log",
            env=self.env,
            cwd=str(ROOT),
        )
        served = peers.Served(name=name, target="", procs=[proc])
        try:
            info = procs.wait_port_file(pf, 120, proc)
            served.target = f"127.0.0.1:{info['grpc_port']}"
        except Exception:
            served.stop()
            raise
        return served

    def start(self, entry: str, models: list[str]) -> peers.Served:
        e = ENTRIES[entry]
        kind = e["kind"]
        if kind == "bare":
            s = self._start_script(
                "bare", "bench.bare_server", ["--plan", str(self.run_dir / "plan.json")]
            )
            for m in models:
                procs.wait_grpc_ready(s.target, 120, s.procs[0], health=False, model=m)
            s.info = {"server": "grpc.aio + protos.codec + store runnable, inline, no batching"}
            return s
        if kind == "zerocopy":
            s = self._start_script("zerocopy", "bench.zerocopy_echo", [])
            procs.wait_grpc_ready(s.target, 60, s.procs[0], health=False, model="echo")
            s.info = {"server": "grpc.aio generic handler, wire bytes re-tagged, no decode"}
            return s
        if kind == "rf":
            loop = ("--event-loop", str(e["event_loop"])) if "event_loop" in e else ()
            s = self._start_rf(int(e["workers"]), models, loop, e.get("gateway_flags", ()))
            return self._over_http(s) if is_http(entry) else s
        if kind == "triton":
            s = peers.start_pytriton(
                self.plan,
                self.run_dir,
                models,
                max_batch_size=64,
                queue_delay_us=int(e["delay_us"]),
                instances=int(e["instances"]),
            )
            return self._over_http(s) if is_http(entry) else s
        if kind == "mlserver":
            return peers.start_mlserver(
                self.plan,
                self.run_dir,
                models,
                max_batch_size=64 if e["adaptive"] else 1,
                max_batch_time_s=0.002,
                parallel_workers=int(e["parallel_workers"]),
            )
        if kind == "bentoml":
            return peers.start_bentoml(
                self.plan, self.run_dir, models, workers=int(e["workers"]), max_batch_size=64
            )
        if kind == "rayserve":
            return peers.start_rayserve(
                self.plan, self.run_dir, models, max_batch_size=64, batch_wait_timeout_s=0.002
            )
        raise RuntimeError(f"entry {entry}: unknown kind {kind!r}")

    @staticmethod
    def _over_http(s: peers.Served) -> peers.Served:
        """The same running server, called over its HTTP/REST v2 port with KServe v2 JSON."""
        if not s.http_target:
            s.stop()
            raise RuntimeError(f"{s.name} reported no HTTP port")
        s.target, s.protocol, s.http_format = s.http_target, "http", "kserve"
        s.info = {**s.info, "protocol": "HTTP/JSON (KServe v2: POST /v2/models/<m>/infer)"}
        return s

    def _start_rf(
        self,
        n: int,
        models: list[str],
        extra: tuple[str, ...] = (),
        gateway_extra: tuple[str, ...] = (),
    ) -> peers.Served:
        """``n`` workers and a gateway; ``extra``: CLI flags both processes take (--event-loop),
        ``gateway_extra``: the gateway's alone."""
        started: list[procs.Proc] = []
        for stale in [f"worker{i + 1}" for i in range(n)] + [f"gateway{n}"]:
            (self.run_dir / f"{stale}.port").unlink(missing_ok=True)  # a previous repeat's
        try:
            workers = []
            for i in range(n):
                w = self.h._ready_worker(f"worker{i + 1}", *extra)
                started.append(w[2])
                workers.append(w)
            self.h.p.models = models  # the gateway waits until it routes each
            gw = self.h._ready_gateway(
                f"gateway{n}", [w[0] for w in workers], *extra, *gateway_extra
            )
            started.append(gw[2])
        except Exception:
            for pr in reversed(started):
                procs.stop(pr)
            raise
        http_port = gw[1].get("http_port")
        return peers.Served(
            name=f"rf{n}",
            target=gw[0],
            procs=[*(w[2] for w in workers), gw[2]],
            stats_targets=[w[0] for w in workers],
            info={
                "workers": n,
                "flags": " ".join((*extra, *gateway_extra)) or "defaults (--device cpu)",
                "protocol": "gRPC",
            },
            pids={"gateway": int(gw[1]["pid"])},
            http_target=f"127.0.0.1:{http_port}" if http_port else "",
        )

    # ---- measuring ---------------------------------------------------------------------------
    def entry_models(self, entry: str) -> list[str]:
        e = ENTRIES[entry]
        want = [m for m in (e.get("models") or self.p.models) if m in self.plan["models"]]
        if e["kind"] == "mlserver":
            want = [m for m in want if self.plan["models"][m]["peer_kind"] != "identity"]
        if is_http(entry):  # JSON bodies: the profile's HTTP models, never the 4 MiB echo
            want = peers.http_peer_models(self.plan, [m for m in want if m in self.p.http_models])
        return want

    def load(self, entry: str, served: peers.Served, models: list[str], rep: int) -> dict:
        pts = points_for(self.p, models, http=is_http(entry))
        spec: dict = {
            "target": served.target,
            "protocol": served.protocol,
            "http_format": served.http_format,
            "headers": served.headers,
            "stats_targets": served.stats_targets,
            "metrics_url": served.metrics_url,
            "batch_metric": served.batch_metric,
            "cpu_pgids": served.pgids,
            "models": {
                m: {
                    k: self.plan["models"][m][k]
                    for k in ("input_name", "datatype", "output_name", "pool_in", "pool_out")
                }
                for m in models
            },
            "points": pts,
            "verify": {
                m: {
                    "in": self.plan["models"][m]["verify_in"],
                    "ref": self.plan["models"][m]["verify_ref"],
                    "out": str(self.run_dir / f"verify-{entry}-r{rep}-{m}.npy"),
                }
                for m in models
            },
        }
        sp = self.run_dir / f"load-{entry}-r{rep}.spec.json"
        out = self.run_dir / f"load-{entry}-r{rep}.json"
        sp.write_text(json.dumps(spec))
        budget = sum(
            max(p["duration_s"], p.get("max_duration_s", 0)) + p["warmup_s"] + 40 for p in pts
        )
        try:
            harness._run_py(
                [PY, "-m", "bench.race_load", "--spec", str(sp), "--out", str(out)],
                env=self.env,
                timeout=budget + 60,
                log_path=self.logs / "race_load.log",
            )
        except Exception as e:  # noqa: BLE001
            if not out.exists():
                return {"error": str(e)[-800:], "points": []}
        res = json.loads(out.read_text())
        res["verified"] = {
            m: self.h.verify(m, pathlib.Path(v["out"]))
            if pathlib.Path(v["out"]).exists()
            else "no answer to the fixed input"
            for m, v in spec["verify"].items()
        }
        return res

    def perf_analyzer(self, entry: str, served: peers.Served, models: list[str]) -> list[dict]:
        if ENTRIES[entry]["kind"] not in ("rf", "triton", "bare") or is_http(entry):
            return []  # MLServer serves no ModelConfig; zerocopy answers ModelInfer only; gRPC
        todo = [(m, "c", c) for m in models for c in self.p.pa_closed.get(m, [])]
        todo += [(m, "rate", r) for m in models for r in self.p.pa_rates.get(m, [])]
        if not todo:
            return []
        from bench import perf_analyzer as pa_mod

        tool = self.h.perf_analyzer_tool()
        if tool is None:
            return [{"error": self.h.pa_error}]
        out = []
        for m, mode, v in todo:
            shape = pa_mod.shape_for(self.plan["models"][m])
            tag = f"{entry}-{m}-{mode}{v}-{time.time_ns()}"

            def one(stability_pct: int, trials: int, tag=tag, m=m, mode=mode, v=v, shape=shape):
                return pa_mod.run(
                    tool[0],
                    tool[1],
                    target=served.target,
                    model=m,
                    concurrency=v if mode == "c" else 0,
                    request_rate=v if mode == "rate" else 0,
                    out_csv=self.run_dir / f"pa-{tag}-s{stability_pct}.csv",
                    log=self.logs / "perf_analyzer.log",
                    interval_ms=self.p.pa_interval_ms,
                    max_trials=trials,
                    stability_pct=stability_pct,
                    shape=shape,
                    headers=served.headers,
                    timeout=self.p.pa_interval_ms / 1000 * (trials + 2) * 2 + 60,
                )

            try:
                out.append({"model": m, **one(10, self.p.pa_trials)})
            except Exception as e:  # noqa: BLE001
                if "stable measurement" not in str(e):
                    out.append({"model": m, "mode": mode, "value": v, "error": str(e)[-400:]})
                    continue
                # No 3 windows within 10% in pa_trials: perf_analyzer then reports nothing. The
                # figure comes from 3 more windows with the check off, marked not stable.
                try:
                    r = one(999, 3)
                    out.append({"model": m, **r, "stable": False})
                except Exception as e2:  # noqa: BLE001
                    out.append({"model": m, "mode": mode, "value": v, "error": str(e2)[-400:]})
        return out

    def run_entry(self, entry: str, rep: int) -> dict:
        models = self.entry_models(entry)
        if not models:
            return {"status": "skipped", "reason": "no model of this run that it serves"}
        first_failure = ""
        for attempt in (1, 2):  # one retry: a peer's start can fail once on a busy machine
            t0 = time.perf_counter()
            try:
                served = self.start(entry, models)
                break
            except Exception as e:  # noqa: BLE001 - one entry never sinks the run
                why = f"{type(e).__name__}: {e}"[-1500:]
                if attempt == 2:
                    return {"status": "failed", "reason": why, "first_failure": first_failure}
                first_failure = why
                log(f"    start failed, retrying once: {why.splitlines()[0][:200]}")
        cold_s = time.perf_counter() - t0
        r: dict = {"status": "ok", "cold_start_s": cold_s, "info": served.info, "models": models}
        if first_failure:
            r["first_start_failure"] = first_failure
        try:
            lg = self.load(entry, served, models, rep)
            r["points"], r["error"] = lg.get("points", []), lg.get("error", "")
            r["verified"] = lg.get("verified", {})
            r["perf_analyzer"] = self.perf_analyzer(entry, served, models)
        except Exception:  # noqa: BLE001
            r["status"], r["reason"] = "failed", traceback.format_exc()[-1500:]
        finally:
            served.stop(timeout=8.0)
        return r

    # ---- the run -----------------------------------------------------------------------------
    def run(self, only: list[str] | None) -> dict:
        t0 = time.time()
        busy0, own0 = harness._busy_cpu_s(), harness._own_cpu_s()
        from bench import report

        meta = report.machine_meta(self.p.name)
        meta.update(
            loadavg_start=os.getloadavg(),
            profile=self.p.name,
            settings=dataclasses.asdict(self.p),
            seed=self.seed,
        )
        self.res["meta"] = meta
        self.h.prepare()
        self.plan = self.h.plan
        self.res["plan"] = {
            m: {
                k: v.get(k)
                for k in (
                    "tag",
                    "method",
                    "datatype",
                    "request_shape",
                    "peer_kind",
                    "weights_sha256",
                    "load_s",
                    "pool_requests",
                    "max_rows",
                )
            }
            for m, v in self.plan["models"].items()
        }
        self.res["inprocess"] = self.h.results.get("inprocess", {})
        unknown = [e for e in only or [] if e not in ENTRIES]
        if unknown:
            raise SystemExit(f"unknown entries {unknown}; known: {', '.join(ENTRIES)}")
        entries = list(only) if only else list(self.p.entries)  # --only: any entry
        rng = random.Random(self.seed)
        for rep in range(self.p.repeats):
            order = entries[:]
            rng.shuffle(order)
            log(f"repeat {rep + 1}/{self.p.repeats}: {', '.join(order)}")
            self.res["runs"].append({"repeat": rep, "order": order})
            for entry in order:
                log(f"  {entry}")
                r = self.run_entry(entry, rep)
                r["repeat"] = rep
                self.res["entries"].setdefault(entry, []).append(r)
                if r["status"] != "ok":
                    lines = [x for x in r.get("reason", "").splitlines() if x.strip()]
                    why = next(
                        (x for x in reversed(lines) if "Error" in x), lines[-1] if lines else ""
                    )
                    log(f"    {r['status']}: {why.strip()[:300]}")
                else:
                    wrong = sum(p.get("wrong", 0) for p in r.get("points", []))
                    errs = sum(p.get("errors", 0) for p in r.get("points", []))
                    log(
                        f"    cold start {r['cold_start_s']:.1f}s, {len(r.get('points', []))} "
                        f"points, {wrong} wrong, {errs} errors, verified {r['verified']}"
                        + (f", load error {r['error'][:200]}" if r.get("error") else "")
                    )
                    for pa in r.get("perf_analyzer") or []:
                        log(f"    perf_analyzer {race_report.pa_line(pa)}")
        if self.h.pa_error:
            meta["perf_analyzer_error"] = self.h.pa_error
        meta["loadavg_end"] = os.getloadavg()
        meta["wall_s"] = wall = time.time() - t0
        meta["other_cores"] = max(
            0.0, ((harness._busy_cpu_s() - busy0) - (harness._own_cpu_s() - own0)) / wall
        )
        return self.res

    def write(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        js = self.out_dir / "race.json"
        self.res["meta"]["results_json"] = (
            os.path.relpath(js, ROOT) if js.is_relative_to(ROOT) else str(js)
        )
        agg = race_report.aggregate(self.res)
        self.res["summary"] = agg
        plots = race_report.plots(self.res, self.out_dir)
        self.res["meta"]["plots"] = [  # relative to the repo: no machine path in results
            os.path.relpath(p, ROOT) if p.is_relative_to(ROOT) else str(p) for p in plots
        ]
        js.write_text(json.dumps(self.res, indent=1, default=str))
        old = self.markdown.read_text() if self.markdown.exists() else ""
        from bench import report

        md = race_report.markdown(self.res, self.markdown.parent, plots, old)
        self.markdown.write_text(report.keep_chaos_section(md, self.markdown))  # bench/chaos.py
        print(race_report.targets_table(agg["targets"]), flush=True)
        log(f"wrote {js}, {self.markdown} in {self.res['meta']['wall_s']:.0f}s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    for name in PROFILES:
        g.add_argument(f"--{name}", action="store_true", help=f"the {name} profile")
    ap.add_argument("--out-dir", default="", help="default bench/results (smoke: under tmp/)")
    ap.add_argument("--markdown", default="", help="default BENCHMARKS.md (smoke: in --out-dir)")
    ap.add_argument("--only", default="", help="comma-separated entries: " + ",".join(ENTRIES))
    ap.add_argument("--repeats", type=int, default=0, help="override the profile's repeats")
    ap.add_argument("--duration", type=float, default=0.0, help="override the window, seconds")
    ap.add_argument("--models", default="", help="comma-separated subset of the profile's models")
    ap.add_argument("--seed", type=int, default=0, help="order shuffle seed (default: time)")
    ap.add_argument("--keep-tmp", action="store_true")
    a = ap.parse_args(argv)
    name = next(n for n in PROFILES if getattr(a, n))
    prof = dataclasses.replace(PROFILES[name])
    if a.repeats:
        prof.repeats = a.repeats
    if a.duration:
        prof.duration_s = a.duration
    if a.models:
        prof.models = [m for m in prof.models if m in a.models.split(",")]
    smoke_dir = "race-smoke" if name == "smoke" else None
    out_dir, markdown = harness.output_paths(a.out_dir, a.markdown, prof.markdown, smoke_dir)
    only = [s for s in a.only.split(",") if s] or None
    harness.stop_all_on_sigterm()
    race = Race(prof, out_dir, markdown, a.seed or int(time.time()))
    try:
        race.run(only)
        race.write()
    finally:
        procs.stop_all()
        if not a.keep_tmp:
            harness.clear_run_dir(race.run_dir, ("*.pt", "*.npy"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
