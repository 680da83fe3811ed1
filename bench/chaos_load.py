"""Load for the chaos scenarios, closed or open loop: every answer checked, every outcome counted.

Runs in its own process (so the test's or bench's process stays responsive) and prints one
JSON object. Requests go to ``--model`` (the RowCost model: answers ``2x + 1``) with a gRPC
deadline of ``--deadline-s`` and inputs distinct per request, and every answer is checked
exactly.

- **Closed loop** (``--clients N``): each of N asyncio clients sends one request at a time. A
  client that is refused (RESOURCE_EXHAUSTED) backs off before its next request, as a
  well-behaved client does: ``--backoff-s`` doubled per refusal in a row, capped at
  ``--max-backoff-s``, with jitter. Used to measure capacity (the load adapts to it).
- **Open loop** (``--rate-rps R``): requests are sent on a fixed schedule of R per second,
  whatever the answers, so the offered load is exactly R (overload is a factor of capacity,
  not a client count that refusals and back-off turn into some other rate). Requests are
  encoded before the clock starts and answers are checked after it stops, so the generator
  spends its time in the window on sending. Latency is measured from the **actual send time**
  (when the call is handed to gRPC), not the scheduled one; how late the generator was on its
  own schedule is reported separately (``send_lag_p99_ms``, ``send_lag_max_ms``): when that lag
  is large, the generator (not the server) is the bottleneck and the offered rate was lower.

Outcomes:

- ``ok`` (answered correctly within the deadline), ``late`` (answered after it: a miss),
  ``wrong`` (an answer that is not ``2x + 1``: must be 0);
- ``refused`` (RESOURCE_EXHAUSTED at admission: estimate, queue full, gateway floor or cap),
  ``shed`` (RESOURCE_EXHAUSTED after it was queued: an admitted request that missed);
- ``deadline`` (DEADLINE_EXCEEDED: a miss), ``codes`` (every other status, by name).

    python -m bench.chaos_load --target HOST:PORT (--clients N | --rate-rps R) --duration-s S \
        [--deadline-s 0.2] [--backoff-s 0.01] [--max-backoff-s 0.2] [--model rowcost] [--seed 0]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import sys
import time

import grpc
import numpy as np

from protos import codec, event_loop
from protos import grpc_service_pb2 as pb
from protos import grpc_service_pb2_grpc as pbg

__all__ = ["run_load", "percentile", "main"]

# messages of RESOURCE_EXHAUSTED answers that refuse before queueing (anything else: shed)
_REFUSAL_MARKS = ("estimated wait", "fastest recent answer", "queue full", "overloaded", "cap")


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) of ``values``; None when empty."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values), q))


async def _client(
    stub: pbg.GRPCInferenceServiceStub,
    cid: int,
    args: argparse.Namespace,
    stop_at: float,
    out: dict,
) -> None:
    seq = 0
    refusals_in_a_row = 0
    while time.monotonic() < stop_at:
        seq += 1
        x = np.array([[args.seed, cid, seq, 0.5]], np.float32)
        request = codec.encode_request(args.model, [x])
        t0 = time.perf_counter()
        try:
            response = await stub.ModelInfer(request, timeout=args.deadline_s)
        except grpc.aio.AioRpcError as exc:
            took = time.perf_counter() - t0
            code = exc.code()
            _count_error(out, code, exc.details() or "", took)
            if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
                # exponential back-off on refusals in a row, capped, with jitter
                refusals_in_a_row += 1
                backoff_s = min(args.backoff_s * 2 ** (refusals_in_a_row - 1), args.max_backoff_s)
                await asyncio.sleep(backoff_s * (0.5 + random.random()))
            elif code is not grpc.StatusCode.DEADLINE_EXCEEDED:
                await asyncio.sleep(args.backoff_s)
            continue
        refusals_in_a_row = 0
        took = time.perf_counter() - t0
        _count_answer(out, codec.decode_response_outputs(response)[0], x, took, args.deadline_s)


def _count_error(out: dict, code: grpc.StatusCode, details: str, took_s: float) -> None:
    """Count one failed call by what it says about admission (see the module doc)."""
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        if any(m in details for m in _REFUSAL_MARKS):
            out["refused"] += 1
            out["refusal_s"].append(took_s)
        else:
            out["shed"] += 1
    elif code is grpc.StatusCode.DEADLINE_EXCEEDED:
        out["deadline"] += 1
    else:
        out["codes"][code.name] += 1
        if len(out["samples"]) < 5:
            out["samples"].append(f"{code.name}: {details[:200]}")


def _count_answer(
    out: dict, got: np.ndarray, x: np.ndarray, took_s: float, deadline_s: float
) -> None:
    """Count one answer: wrong (not 2x + 1), late (after the deadline) or ok."""
    if got.shape != x.shape or not np.array_equal(got, x * 2 + 1):
        out["wrong"] += 1
    elif took_s > deadline_s:
        out["late"] += 1
    else:
        out["ok"] += 1
        out["ok_s"].append(took_s)


_INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"


async def _open_loop(channel: grpc.aio.Channel, args: argparse.Namespace, out: dict) -> float:
    """Send ``rate_rps * duration_s`` requests on a fixed schedule; return the window in s.

    Everything that is not sending (encoding, decoding, checking) happens outside the window;
    the call moves bytes (no serializer), so the generator's per-request work is the call.
    """
    count = max(int(round(args.rate_rps * args.duration_s)), 1)
    interval_s = 1.0 / args.rate_rps
    inputs = [np.array([[args.seed, i, 0.0, 0.5]], np.float32) for i in range(count)]
    bodies = [codec.encode_request(args.model, [x]).SerializeToString() for x in inputs]
    call = channel.unary_unary(_INFER_METHOD)  # bytes in, bytes out
    results: list[tuple[bytes | None, grpc.StatusCode | None, str, float]] = [
        (None, None, "", 0.0)
    ] * count
    lags_s = [0.0] * count

    async def send(i: int, scheduled_s: float) -> None:
        sent_s = time.perf_counter()
        lags_s[i] = sent_s - scheduled_s
        try:
            raw = await call(bodies[i], timeout=args.deadline_s)
        except grpc.aio.AioRpcError as exc:
            results[i] = (None, exc.code(), exc.details() or "", time.perf_counter() - sent_s)
            return
        results[i] = (raw, None, "", time.perf_counter() - sent_s)

    pending: set[asyncio.Task[None]] = set()
    cpu_start_s = time.process_time()
    start_s = time.perf_counter()
    for i in range(count):
        scheduled_s = start_s + i * interval_s
        delay_s = scheduled_s - time.perf_counter()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        task = asyncio.create_task(send(i, scheduled_s))
        pending.add(task)
        task.add_done_callback(pending.discard)
    window_s = max(time.perf_counter() - start_s, args.duration_s)
    await asyncio.gather(*pending)
    out["window_cpu_s"] = time.process_time() - cpu_start_s  # all of this process's threads
    for x, (raw, code, details, took_s) in zip(inputs, results, strict=True):
        if code is not None:
            _count_error(out, code, details, took_s)
        else:
            assert raw is not None
            response = pb.ModelInferResponse.FromString(raw)
            _count_answer(
                out, codec.decode_response_outputs(response)[0], x, took_s, args.deadline_s
            )
    out["offered_rps"] = args.rate_rps
    out["send_lag_p99_ms"] = _ms(percentile(lags_s, 99))
    out["send_lag_max_ms"] = _ms(max(lags_s))
    return window_s


async def _closed_loop(
    stub: pbg.GRPCInferenceServiceStub, args: argparse.Namespace, out: dict
) -> float:
    started = time.monotonic()
    stop_at = started + args.duration_s
    await asyncio.gather(*(_client(stub, c, args, stop_at, out) for c in range(args.clients)))
    return time.monotonic() - started


async def run_load(args: argparse.Namespace) -> dict:
    """Run the clients for ``args.duration_s`` and return the counts (see the module doc)."""
    out: dict = {
        "ok": 0, "late": 0, "wrong": 0, "refused": 0, "shed": 0, "deadline": 0,
        "codes": collections.Counter(), "samples": [], "refusal_s": [], "ok_s": [],
    }  # fmt: skip
    options = [("grpc.max_receive_message_length", 64 * 2**20)]
    async with grpc.aio.insecure_channel(args.target, options=options) as channel:
        await channel.channel_ready()
        if args.rate_rps is not None:
            elapsed = await _open_loop(channel, args, out)
        else:
            elapsed = await _closed_loop(pbg.GRPCInferenceServiceStub(channel), args, out)
    ok_s, refusal_s = out.pop("ok_s"), out.pop("refusal_s")
    out["codes"] = dict(out["codes"])
    out["elapsed_s"] = elapsed
    out["clients"] = args.clients
    out["deadline_s"] = args.deadline_s
    out["sent"] = sum(out[k] for k in ("ok", "late", "wrong", "refused", "shed", "deadline"))
    out["sent"] += sum(out["codes"].values())
    out["goodput_rps"] = out["ok"] / elapsed if elapsed > 0 else 0.0
    out["ok_p50_ms"] = _ms(percentile(ok_s, 50))
    out["ok_p99_ms"] = _ms(percentile(ok_s, 99))
    out["refusal_p50_ms"] = _ms(percentile(refusal_s, 50))
    out["refusal_p99_ms"] = _ms(percentile(refusal_s, 99))
    return out


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", required=True)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--clients", type=int, help="closed loop: this many clients")
    mode.add_argument("--rate-rps", type=float, help="open loop: this many requests per second")
    p.add_argument("--duration-s", type=float, required=True)
    p.add_argument("--deadline-s", type=float, default=0.2)
    p.add_argument("--backoff-s", type=float, default=0.01)
    p.add_argument("--max-backoff-s", type=float, default=0.2)
    p.add_argument("--model", default="rowcost")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(json.dumps(event_loop.run(run_load(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
