"""Fuzz scenario: structure-aware mutations of valid ModelInferRequests plus raw random bytes.

Every request is sent as raw bytes (``/inference.GRPCInferenceService/ModelInfer``) to a
worker and to a gateway in front of it, from a few threads, while good clients check exact
answers. What a fuzzed request may get back: OK, or an answer that says the input was wrong
(INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED for a message over the size limit). UNKNOWN
or INTERNAL for an input error is a bug (a handler that crashed on it), and so is a timeout
(``STALLED``: a request that stalled the process). Data bytes are only mutated for the
``echo`` model (identity on any float32 values), so no fuzzed value can make a model
legitimately raise.

Mutations (seeded, reproducible): shapes (huge, zero, negative, more dims, ``[2**30, 0]``),
datatypes (unknown, mismatched), raw contents (truncated, extended, missing, extra entries),
typed contents mixed with raw, duplicate inputs, names (empty, 10,000 characters, unknown),
parameters (``method`` of the wrong type or unknown, ``timeout``), byte-level flips,
truncations and insertions of serialized valid requests, and random byte strings.

Used by tests/chaos/test_fuzz.py (~2,000 requests) and `make bench-chaos` (10,000).
"""

from __future__ import annotations

import os
import pathlib
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable

import grpc
import numpy as np

from bench.chaos import ChaosContext, Row, scenario
from protos import codec
from protos import grpc_service_pb2 as pb
from protos import grpc_service_pb2_grpc as pbg
from tests.support import procs
from tests.support.gateway_procs import start_gateway
from tests.support.rss import peak_rss_bytes, rss_bytes

__all__ = ["fuzz_requests", "run_fuzz", "BAD_CODES", "MODELS"]

MODELS = "iris_clf,echo"
# STALLED: the call ran into the client's own timeout (a process stalled on the request); a
# DEADLINE_EXCEEDED the server sends is a right answer to a request whose `timeout`
# parameter already ran out
BAD_CODES = ("UNKNOWN", "INTERNAL", "STALLED")
CALL_TIMEOUT_S = 10.0
X_IRIS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])


def _valid(rng: random.Random) -> pb.ModelInferRequest:
    if rng.random() < 0.5:
        return codec.encode_request("iris_clf", [X_IRIS[: rng.randint(1, 2)]])
    rows, cols = rng.randint(0, 4), rng.randint(1, 8)
    x = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)
    return codec.encode_request("echo", [x])


def _mutate_structure(rng: random.Random, req: pb.ModelInferRequest) -> pb.ModelInferRequest:
    r = pb.ModelInferRequest()
    r.CopyFrom(req)
    t = r.inputs[0] if r.inputs else r.inputs.add(name="input__0", datatype="FP32")
    choice = rng.randrange(14)
    if choice == 0:
        del t.shape[:]
        t.shape.extend(rng.choice([[1 << 30, 0], [65536, 0], [0, 1 << 40], [1 << 62, 2]]))
    elif choice == 1:
        del t.shape[:]
        t.shape.extend([rng.choice([-1, -(1 << 62), 3]) for _ in range(rng.randint(0, 3))])
    elif choice == 2:
        del t.shape[:]
        t.shape.extend([1] * rng.choice([3, 17, 64, 1000]))
    elif choice == 3:
        t.datatype = rng.choice(["FP99", "", "BF16", "BYTES", "INT64", "BOOL", "x" * 500])
    elif choice == 4 and r.raw_input_contents:
        raw = r.raw_input_contents[0]
        r.raw_input_contents[0] = raw[: rng.randrange(len(raw) + 1)] + b"\0" * rng.randint(0, 9)
    elif choice == 5:
        r.raw_input_contents.append(b"\0" * rng.randint(0, 16))
    elif choice == 6:
        del r.raw_input_contents[:]
    elif choice == 7:
        t.contents.fp32_contents.extend([1.0] * rng.randint(0, 8))
    elif choice == 8:
        dup = r.inputs.add()
        dup.CopyFrom(t)
    elif choice == 9:
        r.model_name = rng.choice(["", "m" * 10_000, "nope", "echo\0", "iris_clf"])
    elif choice == 10:
        r.model_version = rng.choice(["v" * 5000, "404", "-1"])
    elif choice == 11:
        p = r.parameters["method"]
        if rng.random() < 0.5:
            p.int64_param = 7
        else:
            p.string_param = rng.choice(["nope", "", "z" * 3000])
    elif choice == 12:
        r.parameters["timeout"].int64_param = rng.choice([-5, 0, 1, 1 << 62])
    else:
        for _ in range(rng.randint(0, 40)):
            r.inputs.add(name=f"i{rng.randrange(99)}", datatype="FP32", shape=[1])
    return r


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(3)
        if op == 0 and buf:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            del buf[rng.randrange(len(buf)) :]
        else:
            at = rng.randrange(len(buf) + 1)
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(buf)


def fuzz_requests(count: int, seed: int) -> list[bytes]:
    """``count`` fuzzed serialized requests (reproducible from ``seed``)."""
    rng = random.Random(seed)
    out: list[bytes] = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.55:
            out.append(_mutate_structure(rng, _valid(rng)).SerializeToString())
        elif kind < 0.85:
            base = codec.encode_request("echo", [np.ones((rng.randint(1, 3), 4), np.float32)])
            out.append(_mutate_bytes(rng, base.SerializeToString()))
        else:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 200))))
    return out


def _good_client(address: str, stop: threading.Event, out: Counter) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        x = np.arange(12, dtype=np.float32).reshape(3, 4)
        while not stop.is_set():
            try:
                got = codec.decode_response_outputs(
                    stub.ModelInfer(codec.encode_request("echo", [x]), timeout=CALL_TIMEOUT_S)
                )[0]
            except grpc.RpcError as exc:
                out[f"failed {exc.code().name}"] += 1
                continue
            out["ok" if np.array_equal(got, x) else "wrong"] += 1


def _fire(address: str, requests: list[bytes], threads: int) -> dict:
    codes: Counter = Counter()
    samples: dict[str, str] = {}
    slowest: list[tuple[float, bytes]] = [(0.0, b"")]  # (seconds, request), the one slowest
    lock = threading.Lock()

    def worker(chunk: list[bytes]) -> None:
        with grpc.insecure_channel(address) as channel:
            call: Callable = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
            for data in chunk:
                t0 = time.perf_counter()
                try:
                    call(data, timeout=CALL_TIMEOUT_S)
                    code, details = "OK", ""
                except grpc.RpcError as exc:
                    code, details = exc.code().name, exc.details() or ""
                    if code == "DEADLINE_EXCEEDED" and details == "Deadline Exceeded":
                        code = "STALLED"
                took = time.perf_counter() - t0
                with lock:
                    codes[code] += 1
                    if code in BAD_CODES and code not in samples:
                        samples[code] = f"{details[:300]} <- {data[:60]!r}"
                    if took > slowest[0][0]:
                        slowest[0] = (took, data)

    pool = [threading.Thread(target=worker, args=(requests[i::threads],)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return {
        "codes": dict(codes),
        "bad_samples": samples,
        "slowest_ms": round(slowest[0][0] * 1000, 1),
        "slowest_bytes": len(slowest[0][1]),
    }


def run_fuzz(store_home: str | os.PathLike[str], *, count: int, seed: int = 0) -> dict:
    """A worker and a gateway; ``count`` fuzzed requests to each, with good clients running."""
    started: list[procs.ProcessHandle] = []
    try:
        worker = procs.start_worker(MODELS, store_home)
        started.append(worker)
        procs.wait_serving(worker.address, 60)
        gateway = start_gateway([worker.address])
        started.append(gateway)
        result: dict = {}
        for name, handle in (("worker", worker), ("gateway", gateway)):
            rss_before = rss_bytes(worker.pid)
            good: Counter = Counter()
            stop = threading.Event()
            goods = [
                threading.Thread(target=_good_client, args=(handle.address, stop, good))
                for _ in range(2)
            ]
            for t in goods:
                t.start()
            t0 = time.monotonic()
            fired = _fire(handle.address, fuzz_requests(count, seed), threads=4)
            fired["elapsed_s"] = round(time.monotonic() - t0, 1)
            stop.set()
            for t in goods:
                t.join(30)
            fired["good"] = dict(good)
            fired["worker_rss_growth_mib"] = round(
                (peak_rss_bytes(worker.pid) - rss_before) / 2**20, 1
            )
            result[name] = fired
        result["worker_tracebacks"] = worker.log.count("Traceback")
        result["worker_log_bytes"] = len(worker.log)
        return result
    finally:
        for handle in reversed(started):
            procs.stop(handle)


TITLE = (
    "a worker (iris_clf, echo) and a gateway in front of it; fuzzed ModelInferRequests "
    "(structure-aware mutations + random bytes) from 4 threads, 2 good clients alongside"
)


@scenario("fuzz", title=TITLE)
def bench_fuzz(ctx: ChaosContext) -> list[Row]:
    from tests.chaos.conftest import build_chaos_store

    home = pathlib.Path(tempfile.mkdtemp(dir=ctx.workdir))
    os.environ["RUNNERFLEET_HOME"] = str(home)
    build_chaos_store(home)
    res = run_fuzz(home, count=ctx.fuzz_count)
    rows = []
    for name in ("worker", "gateway"):
        r = res[name]
        bad = sum(r["codes"].get(c, 0) for c in BAD_CODES)
        good = r["good"]
        s = f"fuzz {ctx.fuzz_count:,} -> {name}"
        rows += [
            Row(s, "codes", ", ".join(f"{k} {v}" for k, v in sorted(r["codes"].items()))),
            Row(s, "UNKNOWN / INTERNAL / stalled (client timeout)", str(bad), "0", bad == 0),
            Row(s, "slowest call", f"{r['slowest_ms']:.1f} ms ({r['slowest_bytes']} bytes)",
                "< 100 ms", r["slowest_ms"] < 100),
            Row(s, "good clients", f"{good.get('ok', 0)} exact, {good.get('wrong', 0)} wrong, "
                f"{sum(v for k, v in good.items() if k.startswith('failed'))} failed",
                "all exact", set(good) <= {"ok"}),
            Row(s, "worker peak RSS growth", f"{r['worker_rss_growth_mib']:.0f} MiB"),
        ]  # fmt: skip
    rows.append(Row("fuzz", "worker tracebacks / log bytes",
                    f"{res['worker_tracebacks']} / {res['worker_log_bytes']:,}", "0 / -",
                    res["worker_tracebacks"] == 0))  # fmt: skip
    return rows
