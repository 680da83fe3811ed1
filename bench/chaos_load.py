"""Closed-loop load for the chaos scenarios: every answer checked, every outcome counted.

Runs in its own process (so the test's or bench's process stays responsive) and prints one
JSON object. Each of ``--clients`` asyncio clients sends one request at a time to
``--model`` (the RowCost model: answers ``2x + 1``), with a gRPC deadline of ``--deadline-s``,
inputs distinct per client and sequence number, and checks every answer exactly. A client
that is refused (RESOURCE_EXHAUSTED) backs off before its next request, as a well-behaved
client does: ``--backoff-s`` doubled per refusal in a row, capped at ``--max-backoff-s``,
with jitter. Outcomes:

- ``ok`` (answered correctly within the deadline), ``late`` (answered after it: a miss),
  ``wrong`` (an answer that is not ``2x + 1``: must be 0);
- ``refused`` (RESOURCE_EXHAUSTED at admission: estimate, queue full, gateway floor or cap),
  ``shed`` (RESOURCE_EXHAUSTED after it was queued: an admitted request that missed);
- ``deadline`` (DEADLINE_EXCEEDED: a miss), ``codes`` (every other status, by name).

    python -m bench.chaos_load --target HOST:PORT --clients N --duration-s S \
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

from protos import codec
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
            if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
                details = exc.details() or ""
                if any(m in details for m in _REFUSAL_MARKS):
                    out["refused"] += 1
                    out["refusal_s"].append(took)
                else:
                    out["shed"] += 1
                # exponential back-off on refusals in a row, capped, with jitter
                refusals_in_a_row += 1
                backoff_s = min(args.backoff_s * 2 ** (refusals_in_a_row - 1), args.max_backoff_s)
                await asyncio.sleep(backoff_s * (0.5 + random.random()))
            elif code is grpc.StatusCode.DEADLINE_EXCEEDED:
                out["deadline"] += 1
            else:
                out["codes"][code.name] += 1
                if len(out["samples"]) < 5:
                    out["samples"].append(f"{code.name}: {(exc.details() or '')[:200]}")
                await asyncio.sleep(args.backoff_s)
            continue
        refusals_in_a_row = 0
        took = time.perf_counter() - t0
        got = codec.decode_response_outputs(response)[0]
        if got.shape != x.shape or not np.array_equal(got, x * 2 + 1):
            out["wrong"] += 1
        elif took > args.deadline_s:
            out["late"] += 1
        else:
            out["ok"] += 1
            out["ok_s"].append(took)


async def run_load(args: argparse.Namespace) -> dict:
    """Run the clients for ``args.duration_s`` and return the counts (see the module doc)."""
    out: dict = {
        "ok": 0, "late": 0, "wrong": 0, "refused": 0, "shed": 0, "deadline": 0,
        "codes": collections.Counter(), "samples": [], "refusal_s": [], "ok_s": [],
    }  # fmt: skip
    options = [("grpc.max_receive_message_length", 64 * 2**20)]
    async with grpc.aio.insecure_channel(args.target, options=options) as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        await channel.channel_ready()
        started = time.monotonic()
        stop_at = started + args.duration_s
        await asyncio.gather(*(_client(stub, c, args, stop_at, out) for c in range(args.clients)))
        elapsed = time.monotonic() - started
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
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--duration-s", type=float, required=True)
    p.add_argument("--deadline-s", type=float, default=0.2)
    p.add_argument("--backoff-s", type=float, default=0.01)
    p.add_argument("--max-backoff-s", type=float, default=0.2)
    p.add_argument("--model", default="rowcost")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(json.dumps(asyncio.run(run_load(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
