"""The race's load generator: closed and open loop, distinct inputs, every answer checked.

    python -m bench.race_load --spec SPEC.json --out OUT.json

Runs in its own process (asyncio `tritonclient.grpc.aio`; it never imports `protos`, whose
`inference.*` protobuf names clash with tritonclient's). With `"protocol": "http"` in the spec
it speaks JSON over HTTP instead (one `aiohttp` session, keep-alive), in the spec's
`http_format`: `kserve` (POST /v2/models/<model>/infer, KServe v2 / Triton JSON with typed
`data`: RunnerFleet's gateway, Triton) or `bentoml` / `rayserve` (POST /<model> with
`{"x": rows}`, answered by the output rows: `bench/peer_bentoml.py`, `bench/peer_rayserve.py`).
Bodies are serialised once per pool entry, answers parsed and checked like gRPC ones.

SPEC holds the target, headers, the processes whose CPU and RSS to report, the models
(input/output names, datatype and the pool of distinct requests `bench/prepare.py` wrote with
their in-process answers) and a list of points:

  {"mode": "closed", "models": ["iris_clf"], "c": 16, "rows": 1, "duration_s": 5, "warmup_s": 1}
  {"mode": "open", "models": ["iris_clf"], "rate": 800, "arrival": "poisson", "rows": 1, ...}

Closed loop: `c` coroutines send back to back. Open loop: requests start at scheduled times
(constant gaps, or exponential gaps for Poisson arrivals) whatever the answers do, and latency
runs from the scheduled time, so a server (or a client) that falls behind shows it in the
latency instead of hiding it (no coordinated omission); `send_lag_p99_ms` says how late the
client itself was. With several models, requests go round robin over them (a mix in one
cluster) and each model's own latency is reported too.

Request i uses pool entry i mod N (its first `rows` rows), and its answer is compared with the
in-process answer for those rows: `wrong` counts the answers that differ, `errors` the failed
calls; neither is counted as a success. Every point reports its sample count (`requests`)
beside the percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import numpy as np

from bench.loadgen import (
    _batch_counts,
    _metric_counts,
    _ms,
    _percentile,
    _self_cpu_s,
    write_result,
)
from bench.proc_stat import group_cpu_s, group_rss
from protos import event_loop

__all__ = ["main"]

MAX_IN_FLIGHT = 4096  # open loop: requests beyond this many outstanding are dropped (counted)


HTTP_FORMATS = ("kserve", "bentoml", "rayserve")


def http_path(fmt: str, model: str) -> str:
    """The route a JSON infer for `model` goes to in this request/response format."""
    if fmt == "kserve":  # RunnerFleet's gateway and Triton: KServe v2 / Triton HTTP
        return f"/v2/models/{model}/infer"
    if fmt in ("bentoml", "rayserve"):  # bench/peer_bentoml.py, bench/peer_rayserve.py
        return f"/{model}"
    raise ValueError(f"unknown HTTP format {fmt!r}; known: {', '.join(HTTP_FORMATS)}")


def http_body(fmt: str, input_name: str, datatype: str, x: np.ndarray) -> bytes:
    """The JSON body of one infer: KServe v2 typed `data` (flat), or the peers' `{"x": rows}`."""
    if fmt == "kserve":
        doc = {
            "inputs": [
                {
                    "name": input_name,
                    "shape": list(x.shape),
                    "datatype": datatype,
                    "data": x.reshape(-1).tolist(),
                }
            ]
        }
    else:
        doc = {"x": x.tolist()}
    return json.dumps(doc, separators=(",", ":")).encode()


def http_answer(fmt: str, output_name: str, doc) -> np.ndarray | None:
    """The output of a JSON answer: by name, else the first output (KServe v2); or the array."""
    if fmt != "kserve":
        return None if doc is None else np.asarray(doc)
    outs = (doc.get("outputs") or []) if isinstance(doc, dict) else []
    if not outs:
        return None
    out = next((o for o in outs if o.get("name") == output_name), outs[0])
    data = out.get("data")
    return None if data is None else np.asarray(data)


class HttpClient:
    """JSON infers over an aiohttp session (keep-alive connections, no cap on their number).

    `fresh()` starts a new session (each point does, so connections a previous point left
    behind, or that its server closed under overload, are not reused). A call whose
    connection turns out closed before any answer came (a keep-alive race) is sent once more
    on a new connection; any other failure, or a second one, is the call's error.
    """

    def __init__(self, target: str, fmt: str, headers: dict | None) -> None:
        import aiohttp

        http_path(fmt, "m")  # refuse an unknown format before any load
        self.base = f"http://{target}"
        self.fmt = fmt
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self._aiohttp = aiohttp
        self._session = None
        self.resent = 0

    async def fresh(self) -> None:
        await self.close()
        aiohttp = self._aiohttp
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), headers=self.headers
        )

    async def infer(self, model: str, body: bytes, timeout_s: float):
        if self._session is None:
            await self.fresh()
        session = self._session
        assert session is not None
        url = self.base + http_path(self.fmt, model)
        timeout = self._aiohttp.ClientTimeout(total=timeout_s)
        stale = (self._aiohttp.ServerDisconnectedError, self._aiohttp.ClientOSError)
        for attempt in (1, 2):
            try:
                async with session.post(url, data=body, timeout=timeout) as r:
                    raw = await r.read()
                    status = r.status
                break
            except stale:
                if attempt == 2:
                    raise
                self.resent += 1
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {raw[:200].decode(errors='replace')}")
        return json.loads(raw)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class Pool:
    """Prebuilt requests (input serialised once) and expected answers for one model.

    `http_format` empty: gRPC (`tritonclient` InferInput); else the JSON body of that format.
    """

    def __init__(self, spec: dict, http_format: str = "") -> None:
        import tritonclient.grpc as grpcclient

        self.spec = spec
        self.http_format = http_format
        self.x = np.load(spec["pool_in"], mmap_mode="r")
        self.y = np.load(spec["pool_out"], mmap_mode="r")
        self.n = int(self.x.shape[0])
        self.exact = self.y.dtype.kind in "iub"
        self.row_bytes = int(self.x[0, 0].nbytes)
        self._inputs: dict[int, list] = {}
        self._refs: dict[int, list[np.ndarray]] = {}
        self._grpc = grpcclient

    def build(self, x: np.ndarray):
        """One request's payload for `x` (all its rows)."""
        x = np.ascontiguousarray(x)
        if self.http_format:
            return http_body(self.http_format, self.spec["input_name"], self.spec["datatype"], x)
        inp = self._grpc.InferInput(self.spec["input_name"], list(x.shape), self.spec["datatype"])
        inp.set_data_from_numpy(x)
        return inp

    def request(self, i: int, rows: int):
        if rows not in self._inputs:
            ins, refs = [], []
            for k in range(self.n):
                ins.append(self.build(self.x[k, :rows]))
                refs.append(np.asarray(self.y[k, :rows]))
            self._inputs[rows], self._refs[rows] = ins, refs
        k = i % self.n
        return self._inputs[rows][k], self._refs[rows][k]

    def answer(self, res) -> np.ndarray | None:
        """The answer's output as an array: by the plan's name, else the first output (MLServer
        names it after the method), from raw or typed contents (gRPC) or JSON (HTTP)."""
        if self.http_format:
            return http_answer(self.http_format, self.spec["output_name"], res)
        outs = res.get_response().outputs
        for name in (self.spec["output_name"], outs[0].name if outs else None):
            if name is None:
                continue
            try:
                y = res.as_numpy(name)
            except Exception:  # noqa: BLE001 - typed contents: below
                y = None
            if y is not None:
                return y
        if not outs:
            return None
        c = outs[0].contents
        vals = c.int64_contents or c.fp32_contents or c.fp64_contents or c.int_contents
        return np.asarray(list(vals))

    def check(self, res, ref: np.ndarray) -> str:
        """'' when the answer equals the in-process one, else what differs."""
        y = self.answer(res)
        if y is None:
            return "no output"
        if y.size != ref.size:
            return f"{y.size} values, expected {ref.size}"
        y = y.reshape(ref.shape)
        ok = (
            np.array_equal(y.astype(ref.dtype), ref)
            if self.exact
            else np.allclose(y, ref, rtol=1e-3, atol=1e-4)
        )
        return "" if ok else "answer differs from the in-process model's"


def _summary(lat: list[float], elapsed: float) -> dict:
    lat.sort()
    n = len(lat)
    return {
        "requests": n,
        "rps": n / elapsed if elapsed > 0 else 0.0,
        "p50_ms": _ms(_percentile(lat, 50)),
        "p90_ms": _ms(_percentile(lat, 90)),
        "p99_ms": _ms(_percentile(lat, 99)),
        "mean_ms": (sum(lat) / n * 1e3) if n else None,
        "max_ms": (lat[-1] * 1e3) if n else None,
    }


async def _run(spec: dict) -> dict:
    import tritonclient.grpc.aio as aioclient

    headers = dict(spec.get("headers") or []) or None
    stats_headers = dict(spec.get("stats_headers") or spec.get("headers") or []) or None
    opts = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    http_format = spec.get("http_format", "") if spec.get("protocol") == "http" else ""
    timeout_s = float(spec.get("timeout_s", 30.0))
    if http_format:
        http = HttpClient(spec["target"], http_format, headers)

        async def infer(model: str, payload, timeout: float):
            return await http.infer(model, payload, timeout)

        close = http.close
        fresh = http.fresh
    else:
        client = aioclient.InferenceServerClient(spec["target"], channel_args=opts)

        async def infer(model: str, payload, timeout: float):
            return await client.infer(model, [payload], headers=headers, client_timeout=timeout)

        close = client.close

        async def fresh() -> None:
            return None

    stats_clients = [
        aioclient.InferenceServerClient(t, channel_args=opts) for t in spec.get("stats_targets", [])
    ]
    pools = {name: Pool(m, http_format) for name, m in spec["models"].items()}
    pgids = {int(g) for g in spec.get("cpu_pgids", [])}
    out: dict = {
        "target": spec["target"],
        "protocol": "http" if http_format else "grpc",
        "http_format": http_format,
        "points": [],
    }

    async def counts(model: str) -> tuple[float, float] | None:
        if stats_clients:
            inf = exe = 0
            for c in stats_clients:
                i, e = await _batch_counts(c, model, stats_headers or {})
                inf += i
                exe += e
            return float(inf), float(exe)
        if spec.get("metrics_url"):
            return _metric_counts(spec["metrics_url"], spec["batch_metric"], model)
        return None

    class Tally:
        def __init__(self, models: list[str]) -> None:
            self.lat: list[float] = []
            self.per_model: dict[str, list[float]] = {m: [] for m in models}
            self.errors = self.wrong = 0
            self.first_error = self.first_wrong = ""
            self.rows = 0
            self.payload = 0

    async def call(i: int, models: list[str], rows: int, t_from: float, tally: Tally | None):
        model = models[i % len(models)]
        pool = pools[model]
        inp, ref = pool.request(i // len(models), rows)
        try:
            res = await infer(model, inp, timeout_s)
        except Exception as e:  # noqa: BLE001 - counted and reported
            if tally is not None:
                tally.errors += 1
                tally.first_error = tally.first_error or str(e)[:300]
            return False
        dt = time.perf_counter() - t_from
        if tally is None:
            return True
        why = pool.check(res, ref)
        if why:
            tally.wrong += 1
            tally.first_wrong = tally.first_wrong or f"{model}: {why}"
            return True
        tally.lat.append(dt)
        tally.per_model[model].append(dt)
        tally.rows += rows
        tally.payload += pool.row_bytes * rows
        return True

    async def closed(p: dict, seconds: float, tally: Tally | None) -> float:
        now = time.perf_counter()
        stop_at = now + seconds
        # A measured window runs on past `seconds` until it holds `min_samples` answers, but
        # never past `max_duration_s` (the sample count is reported either way).
        hard_stop = now + max(seconds, float(p.get("max_duration_s") or 0))
        need = int(p.get("min_samples") or 0) if tally is not None else 0
        counter = iter(range(1 << 62))

        def going() -> bool:
            t = time.perf_counter()
            return t < stop_at or (t < hard_stop and tally is not None and len(tally.lat) < need)

        async def worker() -> None:
            # Bounded: stops by `hard_stop`, whatever the server does (per-call timeout).
            while going():
                t0 = time.perf_counter()
                if not await call(next(counter), p["models"], p["rows"], t0, tally):
                    await asyncio.sleep(0.001)

        t_start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(int(p["c"]))))
        return time.perf_counter() - t_start

    async def open_loop(p: dict, seconds: float, tally: Tally | None, lag: list[float]) -> float:
        rate = float(p["rate"])
        n = max(1, int(rate * seconds))
        rng = np.random.default_rng(7)
        if p.get("arrival", "constant") == "poisson":
            offsets = np.cumsum(rng.exponential(1.0 / rate, n))
        else:
            offsets = np.arange(n) / rate
        in_flight: set[asyncio.Task] = set()
        dropped = 0
        t0 = time.perf_counter() + 0.005
        for i, off in enumerate(offsets.tolist()):
            due = t0 + off
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(in_flight) >= MAX_IN_FLIGHT:
                dropped += 1
                continue
            lag.append(time.perf_counter() - due)
            task = asyncio.create_task(call(i, p["models"], p["rows"], due, tally))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:  # bounded: every call has its own timeout
            await asyncio.wait(set(in_flight), timeout=timeout_s + 5)
        if tally is not None:
            tally.errors += dropped
            if dropped:
                tally.first_error = (
                    tally.first_error or f"{dropped} dropped: {MAX_IN_FLIGHT} in flight"
                )
        return max(time.perf_counter() - t0, float(offsets[-1]))

    try:
        for model, v in (spec.get("verify") or {}).items():
            # One fixed input, all its rows in one request, answer saved for the runner to check.
            res = await infer(model, pools[model].build(np.load(v["in"])), 60.0)
            ref_shape = np.load(v["ref"]).shape
            y = pools[model].answer(res)
            if y is not None:  # no file: the runner reports "no answer to the fixed input"
                np.save(v["out"], y if y.size != int(np.prod(ref_shape)) else y.reshape(ref_shape))
        for p in spec["points"]:
            p = {"rows": 1, **p}
            await fresh()  # HTTP: new connections per point (warmed up below)
            resent0 = http.resent if http_format else 0
            warm = float(p.get("warmup_s", 0.0))
            if warm > 0:
                if p["mode"] == "open":
                    await open_loop(p, warm, None, [])
                else:
                    await closed(p, warm, None)
            before = {}
            if len(p["models"]) == 1:
                try:
                    before = {p["models"][0]: await counts(p["models"][0])}
                except Exception as e:  # noqa: BLE001
                    out.setdefault("stats_errors", []).append(str(e)[:200])
            cpu0, self0 = (group_cpu_s(pgids) if pgids else 0.0), _self_cpu_s()
            tally = Tally(p["models"])
            lag: list[float] = []
            if p["mode"] == "open":
                elapsed = await open_loop(p, float(p["duration_s"]), tally, lag)
            else:
                elapsed = await closed(p, float(p["duration_s"]), tally)
            cpu1, self1 = (group_cpu_s(pgids) if pgids else 0.0), _self_cpu_s()
            point = {**p, **_summary(tally.lat, elapsed), "duration_s": elapsed}
            point.update(
                errors=tally.errors,
                wrong=tally.wrong,
                first_error=tally.first_error,
                first_wrong=tally.first_wrong,
                rows_per_s=tally.rows / elapsed if elapsed > 0 else 0.0,
                mib_per_s=tally.payload / elapsed / 2**20 if elapsed > 0 else 0.0,
                client_cores=(self1 - self0) / elapsed,
                server_cores=(cpu1 - cpu0) / elapsed if pgids else None,
                server_cpu_ms_per_req=(
                    (cpu1 - cpu0) * 1e3 / point["requests"] if pgids and point["requests"] else None
                ),
            )
            if http_format:  # sent again after a keep-alive race (HttpClient), warm-up included
                point["http_resent"] = http.resent - resent0
            if p["mode"] == "open":
                lag.sort()
                point["offered_rps"] = float(p["rate"])
                point["send_lag_p99_ms"] = _ms(_percentile(lag, 99))
            if len(p["models"]) > 1:
                point["per_model"] = {m: _summary(v, elapsed) for m, v in tally.per_model.items()}
            point["mean_batch"] = None
            if before and before.get(p["models"][0]) is not None:
                try:
                    b, a = before[p["models"][0]], await counts(p["models"][0])
                    if a is not None and b is not None and a[1] > b[1]:
                        point["mean_batch"] = (a[0] - b[0]) / (a[1] - b[1])
                except Exception as e:  # noqa: BLE001
                    out.setdefault("stats_errors", []).append(str(e)[:200])
            if pgids:
                procs = group_rss(pgids)
                point["server_rss_mib"] = sum(x["rss_mib"] for x in procs)
                point["server_processes"] = procs
            out["points"].append(point)
        return out
    finally:
        await close()
        for c in stats_clients:
            await c.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    with open(a.spec) as f:
        spec = json.load(f)
    return write_result(a.out, lambda: event_loop.run(_run(spec)), {"target": spec.get("target")})


if __name__ == "__main__":
    sys.exit(main())
