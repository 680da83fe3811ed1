"""Load generator for system shared memory: asyncio tritonclient, inputs and outputs in regions.

Its own process (tritonclient and our protos cannot share one). Each of `--concurrency`
coroutines owns an input region and an output region (`tritonclient.utils.shared_memory`),
filled once and registered with the server; it then sends back-to-back ModelInfer calls that
name the regions instead of carrying bytes, first for `--warmup` seconds (discarded), then for
`--duration` seconds. Reports requests/s, p50/p99 and errors as JSON to `--out`, the same
fields as `bench/loadgen.py`, so the two paths compare directly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

import numpy as np

DTYPES = {"FP32": np.float32, "FP64": np.float64}


def _percentile(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(round(q / 100.0 * (len(sorted_vals) - 1))))]


async def _run(a: argparse.Namespace) -> dict:
    import tritonclient.grpc as grpcclient
    import tritonclient.grpc.aio as aioclient
    import tritonclient.utils.shared_memory as shm

    shape = [int(d) for d in a.shape.split(",")]
    x = np.ones(shape, dtype=DTYPES[a.datatype])
    nbytes = x.nbytes
    opts = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    client = aioclient.InferenceServerClient(a.target, channel_args=opts)
    handles = []
    tag = f"rfb{os.getpid()}"
    try:
        await client.unregister_system_shared_memory()
        slots = []
        for i in range(a.concurrency):
            names = (f"{tag}_in{i}", f"{tag}_out{i}")
            for name in names:
                handle = shm.create_shared_memory_region(name, "/" + name, nbytes)
                handles.append(handle)
                await client.register_system_shared_memory(name, "/" + name, nbytes)
            shm.set_shared_memory_region(handles[-2], [x])
            slots.append(names)

        def request(slot: tuple[str, str]) -> tuple[list, list]:
            inp = grpcclient.InferInput(a.input_name, shape, a.datatype)
            inp.set_shared_memory(slot[0], nbytes)
            out = grpcclient.InferRequestedOutput(a.output_name)
            out.set_shared_memory(slot[1], nbytes)
            return [inp], [out]

        latencies: list[float] = []
        errors = 0
        measuring = False
        stop_at = 0.0

        async def worker(slot: tuple[str, str]) -> None:
            nonlocal errors
            inputs, outputs = request(slot)
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                try:
                    await client.infer(a.model, inputs, outputs=outputs, client_timeout=a.timeout)
                except Exception:  # noqa: BLE001 - counted, the run goes on
                    if measuring:
                        errors += 1
                    continue
                if measuring:
                    latencies.append(time.perf_counter() - t0)

        stop_at = time.monotonic() + a.warmup
        await asyncio.gather(*(worker(s) for s in slots))
        measuring = True
        started = time.monotonic()
        stop_at = started + a.duration
        await asyncio.gather(*(worker(s) for s in slots))
        elapsed = time.monotonic() - started
        latencies.sort()
        rps = len(latencies) / elapsed
        return {
            "points": [
                {
                    "concurrency": a.concurrency,
                    "rps": rps,
                    "mib_s": rps * nbytes / 2**20,
                    "p50_ms": (_percentile(latencies, 50) or 0) * 1e3,
                    "p99_ms": (_percentile(latencies, 99) or 0) * 1e3,
                    "errors": errors,
                    "tensor_bytes": nbytes,
                }
            ]
        }
    finally:
        try:
            await client.unregister_system_shared_memory()
        finally:
            for handle in handles:
                shm.destroy_shared_memory_region(handle)
            await client.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--input-name", default="input__0")
    p.add_argument("--output-name", default="output__0")
    p.add_argument("--datatype", default="FP32", choices=sorted(DTYPES))
    p.add_argument("--shape", required=True, help="request shape, e.g. 1,1048576")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    try:
        result = asyncio.run(_run(a))
    except Exception as exc:  # noqa: BLE001 - reported to the harness as JSON
        result = {"error": f"{type(exc).__name__}: {exc}"}
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
