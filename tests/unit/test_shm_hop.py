"""The gateway's shared-memory hop: request and response rewriting, slot lifetime."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest

from api_gateway.shm_hop import ShmHop, hop_request, hop_response, remove_stale_objects
from protos import codec
from protos import grpc_service_pb2 as pb
from protos.errors import NotFound, Unimplemented
from protos.shm import SHM_DIR, SharedMemoryRegistry

MIB = 1024 * 1024


class FakeWorker:
    """A worker's registry, reached the way the gateway reaches it (async, raising errors)."""

    def __init__(self, refuse: Exception | None = None, delay_s: float = 0.0) -> None:
        self.registry = SharedMemoryRegistry()
        self.refuse = refuse
        self.delay_s = delay_s
        self.unregistered: list[str] = []

    async def register(self, request: pb.SystemSharedMemoryRegisterRequest) -> None:
        await asyncio.sleep(self.delay_s)
        if self.refuse is not None:
            raise self.refuse
        self.registry.register(request.name, request.key, request.offset, request.byte_size)

    async def unregister(self, name: str) -> None:
        self.unregistered.append(name)
        self.registry.unregister(name)

    def hop(self, max_bytes: int = 64 * MIB) -> ShmHop:
        return ShmHop(
            self.register, self.unregister, address="w", min_bytes=MIB, max_bytes=max_bytes
        )


def _objects() -> set[str]:
    return {n for n in os.listdir(SHM_DIR) if n.startswith("rf-hop-")}


def _serve(worker: FakeWorker, data: bytes, model=lambda arrays: arrays) -> bytes:
    """What the worker does with a forwarded request: decode, run, encode (bytes to bytes)."""
    request, raws = codec.parse_infer_request_wire(data)
    arrays = codec.decode_request_inputs(request, worker.registry, raws=raws)
    outputs = model(arrays)
    names = [f"output__{i}" for i in range(len(outputs))]
    return codec.encode_response_wire(
        request, outputs, names, worker.registry, model_name="echo", model_version="1"
    )


def test_a_request_crosses_through_the_slot_and_answers_raw() -> None:
    async def main() -> None:
        worker = FakeWorker()
        hop = worker.hop()
        rng = np.random.default_rng(3)
        x = rng.standard_normal((300, 1024)).astype(np.float32)
        y = rng.integers(0, 100, (7, 3), dtype=np.int64)
        data = codec.encode_request("echo", [x, y]).SerializeToString()
        slot = await hop.acquire(4 * MIB)
        assert slot is not None
        hopped = hop_request(data, slot)
        assert hopped is not None
        assert len(hopped) < 1024
        answer = pb.ModelInferResponse.FromString(hop_response(_serve(worker, hopped), slot))
        out_x, out_y = codec.decode_response_outputs(answer)
        assert np.array_equal(out_x, x)
        assert np.array_equal(out_y, y)
        assert all(len(t.parameters) == 0 for t in answer.outputs)
        hop.release(slot, reusable=True)
        assert await hop.acquire(2 * MIB) is slot  # reused after an answer
        hop.close()
        worker.registry.close()

    asyncio.run(main())


def test_outputs_that_do_not_fit_stay_raw() -> None:
    async def main() -> None:
        worker = FakeWorker()
        hop = worker.hop()
        x = np.ones((256, 1024), np.float32)  # 1 MiB in a 2 MiB slot; 3 MiB out
        data = codec.encode_request("echo", [x]).SerializeToString()
        slot = await hop.acquire(2 * MIB)
        assert slot is not None
        hopped = hop_request(data, slot)
        assert hopped is not None
        big = np.arange(3 * MIB // 4, dtype=np.float32)
        response = _serve(worker, hopped, model=lambda arrays: [arrays[0] * 2, big])
        (out, out_big) = codec.decode_response_outputs(
            pb.ModelInferResponse.FromString(hop_response(response, slot))
        )
        assert np.array_equal(out, x * 2)
        assert np.array_equal(out_big, big)
        hop.close()
        worker.registry.close()

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["typed", "shm", "empty"])
def test_requests_the_hop_cannot_carry_are_left_alone(kind: str) -> None:
    async def main() -> None:
        worker = FakeWorker()
        hop = worker.hop()
        slot = await hop.acquire(2 * MIB)
        assert slot is not None
        request = codec.encode_request("echo", [np.ones((4, 4), np.float32)])
        if kind == "typed":
            request.raw_input_contents.pop()
            request.inputs[0].contents.fp32_contents.extend([1.0] * 16)
        elif kind == "shm":
            request.inputs[0].parameters[codec.SHM_REGION].string_param = "client"
        else:
            request.raw_input_contents[0] = b""
        assert hop_request(request.SerializeToString(), slot) is None
        hop.close()

    asyncio.run(main())


def test_a_slot_is_reused_only_after_an_answer() -> None:
    async def main() -> None:
        worker = FakeWorker()
        hop = worker.hop()
        slot = await hop.acquire(2 * MIB)
        assert slot is not None
        assert slot.key in _objects()
        hop.release(slot, reusable=False)  # an error, a cancel, a deadline
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert slot.key not in _objects()
        assert worker.unregistered == [slot.region]
        again = await hop.acquire(2 * MIB)
        assert again is not None
        assert again is not slot
        hop.close()
        assert again.key not in _objects()

    asyncio.run(main())


def test_the_byte_cap_sends_the_rest_to_grpc() -> None:
    async def main() -> None:
        worker = FakeWorker()
        hop = worker.hop(max_bytes=4 * MIB)
        first = await hop.acquire(2 * MIB)
        second = await hop.acquire(2 * MIB)
        assert first is not None
        assert second is not None
        assert await hop.acquire(2 * MIB) is None
        hop.release(first, reusable=False)
        third = await hop.acquire(2 * MIB)  # a retired slot frees its share
        assert third is not None
        hop.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    "refusal",
    [NotFound("object does not exist on this host"), Unimplemented("shared memory is off")],
)
def test_a_worker_that_cannot_map_the_slot_stays_on_grpc(refusal: Exception) -> None:
    async def main() -> None:
        worker = FakeWorker(refuse=refusal)
        hop = worker.hop()
        before = _objects()
        assert hop.wants(2 * MIB)
        assert await hop.acquire(2 * MIB) is None
        assert not hop.wants(2 * MIB)
        assert hop.available is False
        assert not _objects() - before
        hop.reset()  # a restarted worker is tried again
        assert hop.wants(2 * MIB)

    asyncio.run(main())


def test_reset_retires_free_and_busy_slots() -> None:
    async def main() -> None:
        worker = FakeWorker()
        hop = worker.hop()
        busy = await hop.acquire(2 * MIB)
        free = await hop.acquire(2 * MIB)
        assert busy is not None
        assert free is not None
        hop.release(free, reusable=True)
        hop.reset()  # the worker's health stream broke
        assert free.key not in _objects()
        assert busy.key in _objects()
        hop.release(busy, reusable=True)  # answered, but by the old process
        assert busy.key not in _objects()
        fresh = await hop.acquire(2 * MIB)
        assert fresh is not None
        assert fresh not in (busy, free)
        hop.close()

    asyncio.run(main())


def test_a_caller_cancelled_while_registering_leaves_nothing() -> None:
    async def main() -> None:
        worker = FakeWorker(delay_s=0.05)
        hop = worker.hop()
        before = _objects()
        task = asyncio.create_task(hop.acquire(2 * MIB))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.1)
        assert not _objects() - before
        assert len(worker.unregistered) == 1

    asyncio.run(main())


def test_objects_of_dead_gateways_are_removed() -> None:
    dead = os.path.join(SHM_DIR, "rf-hop-999999999-0123abcd-0")  # no such pid
    mine = os.path.join(SHM_DIR, f"rf-hop-{os.getpid()}-0123abcd-0")
    for path in (dead, mine):
        with open(path, "wb") as f:
            f.write(b"x")
    try:
        assert remove_stale_objects() >= 1
        assert not os.path.exists(dead)
        assert os.path.exists(mine)
    finally:
        for path in (dead, mine):
            if os.path.exists(path):
                os.unlink(path)
