"""The one load generator every system is measured with: asyncio `tritonclient.grpc.aio`.

With `--protocol http` the same loop runs over HTTP/REST v2 with `tritonclient.http.aio`
(binary tensors both ways, as tritonclient.http and perf_analyzer send them; one connection
per concurrent caller); statistics still come over gRPC from `--stats-target`.

Runs in its own process (our generated protos and tritonclient both register `inference.*` in
protobuf's default pool, so this module never imports `protos`). For each concurrency level it
runs that many coroutines, each sending single-request `ModelInfer` calls back to back over one
shared channel, first for `--warmup` seconds (discarded), then for `--duration` seconds, and
reports requests/s, latency percentiles and errors. Mean batch size comes from the servers'
`ModelStatistics` (inference_count / execution_count deltas, summed over `--stats-target`s) or
from a Prometheus histogram (`--metrics-url` + `--batch-metric`, `_sum` / `_count` deltas).

`--cpu-pgid G` (repeatable) reports the CPU the system's process groups used per window (cores
busy, CPU ms per request), beside the load generator's own CPU (`client_cores`: near 1.0 means
the single-threaded client itself was the limit).

`--verify-in X.npy --verify-out Y.npy` first sends X once (all its rows in one request) and saves
the answer, so the harness can check that a system serves the same weights (`--verify-only`
stops there).

Prints nothing but errors; writes its JSON to `--out`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.proc_stat import cpu_s_by_group
from protos import event_loop

DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}


def _percentile(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(q / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def _self_cpu_s() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def _headers(pairs: list[str]) -> dict[str, str]:
    out = {}
    for p in pairs:
        k, _, v = p.partition(":")
        out[k.strip()] = v.strip()
    return out


async def _batch_counts(client, model: str, headers: dict) -> tuple[int, int]:
    stats = await client.get_inference_statistics(model_name=model, headers=headers or None)
    inf = exe = 0
    for s in stats.model_stats:
        if s.name == model:
            inf += int(s.inference_count)
            exe += int(s.execution_count)
    return inf, exe


def _metric_counts(url: str, metric: str, model: str) -> tuple[float, float]:
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback only
        text = r.read().decode("utf-8", "replace")
    total = count = 0.0
    pat = re.compile(rf"^{re.escape(metric)}_(sum|count)(\{{[^}}]*\}})?\s+([0-9.eE+-]+)$")
    for line in text.splitlines():
        m = pat.match(line)
        if not m:
            continue
        labels = m.group(2) or ""
        # MLServer labels a model `model_name`, BentoML an API `method_name` (one per model)
        if model and any(
            f"{k}=" in labels and f'{k}="{model}"' not in labels
            for k in ("model_name", "method_name")
        ):
            continue
        if m.group(1) == "sum":
            total += float(m.group(3))
        else:
            count += float(m.group(3))
    return total, count


class _HttpClient:
    """The calls this module makes, over `tritonclient.http.aio`, binary tensors both ways."""

    def __init__(self, target: str, connections: int) -> None:
        import tritonclient.http.aio as httpaio

        self._client = httpaio.InferenceServerClient(target, conn_limit=connections)
        self.output_name = ""

    async def infer(self, model, inputs, headers=None, client_timeout=None):
        import tritonclient.http as httpclient

        outputs = None
        if self.output_name:
            outputs = [httpclient.InferRequestedOutput(self.output_name, binary_data=True)]
        # tritonclient's own `timeout` is the server-side request timeout (microseconds);
        # the caller's bound on the call is enforced here instead
        call = self._client.infer(model, inputs, outputs=outputs, headers=headers)
        return await asyncio.wait_for(call, client_timeout)

    async def close(self) -> None:
        await self._client.close()


def _infer_input(protocol: str, name: str, shape: list[int], datatype: str, x: np.ndarray):
    if protocol == "http":
        import tritonclient.http as httpclient

        tensor = httpclient.InferInput(name, shape, datatype)
        tensor.set_data_from_numpy(x, binary_data=True)
        return tensor
    import tritonclient.grpc as grpcclient

    tensor = grpcclient.InferInput(name, shape, datatype)
    tensor.set_data_from_numpy(x)
    return tensor


def _verify_answer(protocol: str, res) -> tuple[str, np.ndarray, bool]:
    """(output name, its array, whether it came raw/binary) of one verify answer."""
    if protocol == "http":
        first = res.get_response()["outputs"][0]
        return (
            first["name"],
            res.as_numpy(first["name"]),
            "binary_data_size" in first.get("parameters", {}),
        )
    resp = res.get_response()
    name = resp.outputs[0].name
    try:
        y = res.as_numpy(name)
    except Exception:  # noqa: BLE001 - servers that answer typed contents (MLServer)
        c = resp.outputs[0].contents
        vals = c.int64_contents or c.fp32_contents or c.fp64_contents or c.int_contents
        y = np.asarray(list(vals)).reshape(list(resp.outputs[0].shape))
    return name, y, bool(resp.raw_output_contents)


async def _run(a: argparse.Namespace) -> dict:
    import tritonclient.grpc.aio as aioclient

    headers = _headers(a.header)
    stats_headers = _headers(a.stats_header) if a.stats_header else headers
    opts = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    levels = [int(c) for c in a.concurrency.split(",")]
    client: Any = (
        _HttpClient(a.target, max(levels))
        if a.protocol == "http"
        else aioclient.InferenceServerClient(a.target, channel_args=opts)
    )
    stats_clients = [
        aioclient.InferenceServerClient(t, channel_args=opts) for t in (a.stats_target or [])
    ]
    out: dict = {"target": a.target, "model": a.model, "protocol": a.protocol, "points": []}
    try:
        if a.verify_in:
            x = np.load(a.verify_in)
            inp = _infer_input(a.protocol, a.input_name, list(x.shape), a.datatype, x)
            res = await client.infer(a.model, [inp], headers=headers or None, client_timeout=60)
            name, y, raw = _verify_answer(a.protocol, res)
            if y is None:
                raise RuntimeError(f"no output {name!r} in the answer")
            np.save(a.verify_out, np.asarray(y))
            out["verify_output"] = name
            out["raw_output"] = raw
            if a.protocol == "http":
                client.output_name = name  # binary outputs from here on
            if a.verify_only:
                return out

        shape = [int(s) for s in a.shape.split(",")]
        rng = np.random.default_rng(0)
        x = rng.standard_normal(size=shape).astype(DTYPES[a.datatype])
        inp = _infer_input(a.protocol, a.input_name, shape, a.datatype, x)
        payload = x.nbytes

        async def one_level(conc: int, seconds: float, record: bool) -> dict:
            lat: list[float] = []
            errors = 0
            first_error = ""
            stop_at = time.perf_counter() + seconds

            async def worker() -> None:
                nonlocal errors, first_error
                # Bounded: stops at `stop_at`, whatever the server does (per-call timeout).
                while time.perf_counter() < stop_at:
                    t0 = time.perf_counter()
                    try:
                        await client.infer(
                            a.model, [inp], headers=headers or None, client_timeout=a.timeout
                        )
                    except Exception as e:  # noqa: BLE001 - counted and reported
                        errors += 1
                        if not first_error:
                            first_error = str(e)[:300]
                        await asyncio.sleep(0.001)
                        continue
                    if record:
                        lat.append(time.perf_counter() - t0)

            t_start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(conc)))
            elapsed = time.perf_counter() - t_start
            lat.sort()
            n = len(lat)
            return {
                "concurrency": conc,
                "requests": n,
                "errors": errors,
                "first_error": first_error,
                "duration_s": elapsed,
                "rps": n / elapsed if elapsed > 0 else 0.0,
                "rows_per_s": n * shape[0] / elapsed if elapsed > 0 else 0.0,
                "mib_per_s": n * payload / elapsed / 2**20 if elapsed > 0 else 0.0,
                # None (JSON null) when nothing succeeded
                "p50_ms": _ms(_percentile(lat, 50)),
                "p90_ms": _ms(_percentile(lat, 90)),
                "p99_ms": _ms(_percentile(lat, 99)),
                "mean_ms": (sum(lat) / n * 1e3) if n else None,
                "max_ms": (lat[-1] * 1e3) if n else None,
            }

        async def counts() -> tuple[float, float] | None:
            if stats_clients:
                inf = exe = 0
                for c in stats_clients:
                    i, e = await _batch_counts(c, a.model, stats_headers)
                    inf += i
                    exe += e
                return float(inf), float(exe)
            if a.metrics_url:
                return _metric_counts(a.metrics_url, a.batch_metric, a.model)
            return None

        for conc in levels:
            if a.warmup > 0:
                await one_level(conc, a.warmup, record=False)
            before = None
            try:
                before = await counts()
            except Exception as e:  # noqa: BLE001
                out.setdefault("stats_errors", []).append(str(e)[:200])
            pgids = {int(g) for g in a.cpu_pgid}
            groups0, self0 = cpu_s_by_group(pgids), _self_cpu_s()
            point = await one_level(conc, a.duration, record=True)
            groups1, self1 = cpu_s_by_group(pgids), _self_cpu_s()
            cpu0, cpu1 = sum(groups0.values()), sum(groups1.values())
            el = point["duration_s"] or 1.0
            # the same per process group (each --cpu-pgid), e.g. a gateway and its workers apart
            point["server_cpu_ms_per_req_by_pgid"] = {
                str(g): (groups1[g] - groups0[g]) * 1e3 / point["requests"]
                for g in sorted(pgids)
                if point["requests"]
            }
            # Server CPU (all processes of the system) and the load generator's own CPU, in
            # cores busy over the window, and server CPU per successful request.
            point["server_cores"] = (cpu1 - cpu0) / el if pgids else None
            point["server_cpu_ms_per_req"] = (
                (cpu1 - cpu0) * 1e3 / point["requests"] if pgids and point["requests"] else None
            )
            point["client_cores"] = (self1 - self0) / el
            point["mean_batch"] = None
            if before is not None:
                try:
                    after = await counts()
                    if after is not None and after[1] > before[1]:
                        point["mean_batch"] = (after[0] - before[0]) / (after[1] - before[1])
                except Exception as e:  # noqa: BLE001
                    out.setdefault("stats_errors", []).append(str(e)[:200])
            out["points"].append(point)
            if point["requests"] == 0 and point["errors"] > 0 and a.stop_on_failure:
                break
        out["payload_bytes"] = payload
        out["shape"] = shape
        return out
    finally:
        await client.close()
        for c in stats_clients:
            await c.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", required=True, help="host:port of the gRPC (or HTTP) server")
    p.add_argument("--protocol", default="grpc", choices=("grpc", "http"))
    p.add_argument("--model", required=True)
    p.add_argument("--input-name", default="input__0")
    p.add_argument("--datatype", default="FP32", choices=sorted(DTYPES))
    p.add_argument("--shape", default="1,4", help="request shape, batch first")
    p.add_argument("--concurrency", default="1,4,16,64")
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    p.add_argument("--header", action="append", default=[], help="NAME:VALUE, every request")
    p.add_argument("--stats-target", action="append", default=[])
    p.add_argument("--stats-header", action="append", default=[])
    p.add_argument("--metrics-url", default="")
    p.add_argument("--batch-metric", default="")
    p.add_argument("--verify-in", default="")
    p.add_argument("--verify-out", default="")
    p.add_argument("--verify-only", action="store_true", help="verify, then stop (no load)")
    p.add_argument("--stop-on-failure", action="store_true")
    p.add_argument(
        "--cpu-pgid",
        action="append",
        default=[],
        help="process group of the system under test: report its CPU per window",
    )
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    return write_result(
        a.out, lambda: event_loop.run(_run(a)), {"target": a.target, "model": a.model}
    )


def write_result(out_path: str, run: Callable[[], dict], on_error: dict) -> int:
    """Write `run()`'s JSON to `out_path` (exit status 0); if it raises, `on_error` with the
    `error` (also on stderr) instead, and 1, so the caller reads why from the same file."""
    try:
        result = run()
    except Exception as e:  # noqa: BLE001 - reported to the caller in the JSON
        result = {**on_error, "error": f"{type(e).__name__}: {e}"[:800]}
        with open(out_path, "w") as f:
            json.dump(result, f)
        print(result["error"], file=sys.stderr)
        return 1
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
