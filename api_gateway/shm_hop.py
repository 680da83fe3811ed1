"""The gateway -> worker hop through shared memory, for big tensors on one host.

A request whose bytes reach ``forward_shm_min_bytes`` does not cross to a worker on this host
through gRPC: the gateway copies its ``raw_input_contents`` into a *slot* (a POSIX
shared-memory object it created and registered at that worker as a system shared-memory
region, ``protos/shm.py``), sends the request without them, each input naming its place in the
slot, and asks the worker (request parameters ``HOP_REGION``/``HOP_OFFSET``,
``protos/codec.py``) to write its outputs into the rest of the slot. The outputs are copied
from the slot back into ``raw_output_contents``, so the client gets an ordinary response. A
4 MiB tensor then costs the hop two copies instead of four transfers through grpc's buffers
and the kernel (issue 13).

Slot lifetime: a slot belongs to one forward from ``acquire`` to ``release``. It goes back to
the free list only when the worker answered that forward with a response, so it no longer
reads or writes the slot. Any other end (an error, a cancelled hedge or caller, a deadline, a
broken call) *retires* it: the gateway unlinks and unmaps it and asks the worker to unregister
it, and never hands it out again, because a worker still running the request could write into
it later (into memory only that worker still maps). When a worker's health stream breaks or
leaves SERVING, every slot of it is retired (a restarted process has none registered).

Where the hop does not apply, requests go through gRPC as before: a worker on another host or
in another container (registering the first slot fails: the object does not exist there, or
shared memory is off on the worker), until it restarts; requests under the threshold; inputs
already in shared memory, typed or empty; no free slot and ``forward_shm_max_bytes`` of slots
already live for that worker. A worker that answers that a slot's region is unknown (someone
unregistered it there) has its slots retired and the request is sent again through gRPC.

Objects are named ``/rf-hop-<gateway pid>-<token>-<n>``, mode 0600; the gateway removes its
own when slots retire and at exit, and removes those of gateway processes that no longer
exist when it creates its first slot (a gateway killed with SIGKILL cannot clean up).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import mmap
import os
import re
import secrets
from collections.abc import Awaitable, Callable

from api_gateway.coalescer import ForwardOutcome
from protos import codec
from protos import grpc_service_pb2 as pb
from protos.errors import ErrorCode, Internal, RunnerFleetError
from protos.pid import remove_files_of_dead_processes
from protos.shm import SHM_DIR
from protos.wire import append_repeated_bytes, split_repeated_bytes

__all__ = ["ShmHop", "Slot", "hop_request", "hop_response"]

log = logging.getLogger(__name__)

_PREFIX = "rf-hop-"
_STALE = re.compile(rf"^{_PREFIX}(\d+)-[0-9a-f]+-\d+$")
_MIN_SLOT_BYTES = 1024 * 1024
_RAW_INPUT_FIELD = pb.ModelInferRequest.DESCRIPTOR.fields_by_name["raw_input_contents"].number
_RAW_OUTPUT_FIELD = pb.ModelInferResponse.DESCRIPTOR.fields_by_name["raw_output_contents"].number

Register = Callable[[pb.SystemSharedMemoryRegisterRequest], Awaitable[None]]
Unregister = Callable[[str], Awaitable[None]]
Submit = Callable[[bytes, "float | None", str], Awaitable[ForwardOutcome]]


@dataclasses.dataclass(eq=False)
class Slot:
    """One shared-memory object of the gateway, registered at one worker as ``region``."""

    region: str  # its name at the worker
    key: str  # the POSIX shared-memory name, without the leading '/'
    size: int
    mapping: mmap.mmap
    epoch: int  # the worker incarnation it was registered with

    def write(self, offset: int, data: memoryview) -> None:
        self.mapping[offset : offset + len(data)] = data

    def unlink(self) -> None:
        """Remove the object's name and this process's mapping (the worker keeps its own)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(SHM_DIR, self.key))
        with contextlib.suppress(BufferError):  # a view still held: GC unmaps it
            self.mapping.close()


def slot_bytes_for(request_bytes: int) -> int:
    """The slot a request needs: its inputs and as much again for outputs, in whole MiB."""
    need = max(2 * codec.hop_align(request_bytes), _MIN_SLOT_BYTES)
    return -(-need // _MIN_SLOT_BYTES) * _MIN_SLOT_BYTES


class ShmHop:
    """One worker's slots: created on demand, registered there, reused only after an answer."""

    def __init__(
        self,
        register: Register,
        unregister: Unregister,
        *,
        address: str,
        min_bytes: int,
        max_bytes: int,
        on_hop: Callable[[], None] = lambda: None,
    ) -> None:
        self._on_hop = on_hop  # one request sent through a slot (the metrics)
        self._register = register
        self._unregister = unregister
        self.address = address
        self.min_bytes = min_bytes
        self.max_bytes = max_bytes
        self.available: bool | None = None  # None: not tried yet on this incarnation
        self._epoch = 0
        self._free: list[Slot] = []
        self._linked: set[Slot] = set()  # every slot whose object still exists
        self._live_bytes = 0  # free and busy slots of this epoch
        self._token = secrets.token_hex(4)
        self._numbers = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()

    def wants(self, request_bytes: int) -> bool:
        """Whether a request this big should try the hop."""
        return 0 < self.min_bytes <= request_bytes and self.available is not False

    async def forward(
        self, request: bytes, deadline: float | None, traceparent: str, submit: Submit
    ) -> ForwardOutcome:
        """Send ``request`` through a slot with ``submit`` (or plainly if the hop cannot)."""
        slot = await self.acquire(slot_bytes_for(len(request)))
        if slot is None:
            return await submit(request, deadline, traceparent)
        hopped = hop_request(request, slot)
        if hopped is None:  # not a request the hop can carry: the slot was not used
            self.release(slot, reusable=True)
            return await submit(request, deadline, traceparent)
        answered = False
        self._on_hop()
        try:
            outcome = await submit(hopped, deadline, traceparent)
            if outcome.ok:
                try:
                    payload = hop_response(outcome.payload, slot)
                except RunnerFleetError as exc:
                    return ForwardOutcome(exc.code, b"", exc.message)
                answered = True
                return outcome._replace(payload=payload)
            if outcome.code is ErrorCode.NOT_FOUND and slot.region in outcome.message:
                log.warning("worker %s lost its shared-memory slots; re-creating", self.address)
                self.reset()
                return await submit(request, deadline, traceparent)
            return outcome
        finally:
            self.release(slot, reusable=answered)

    async def acquire(self, size: int) -> Slot | None:
        """A free slot of at least ``size`` bytes, a new one, or None (use gRPC)."""
        fitting = [s for s in self._free if s.size >= size]
        if fitting:
            slot = min(fitting, key=lambda s: s.size)
            self._free.remove(slot)
            return slot
        if self.available is False or self._live_bytes + size > self.max_bytes:
            return None
        return await self._create(size)

    def release(self, slot: Slot, *, reusable: bool) -> None:
        """Back to the free list after an answer; otherwise retired for good."""
        if reusable and slot.epoch == self._epoch:
            self._free.append(slot)
        else:
            self._retire(slot)

    def reset(self) -> None:
        """The worker may have restarted: retire every free slot, busy ones when released."""
        self._epoch += 1
        self.available = None
        free, self._free = self._free, []
        for slot in free:
            self._retire(slot)
        self._live_bytes = 0

    def close(self) -> None:
        """Process exit or worker gone: unlink every slot, busy ones too (after the drain)."""
        self._epoch += 1
        self._free = []
        for slot in list(self._linked):
            self._unlink(slot)
        for task in self._tasks:
            task.cancel()

    async def _create(self, size: int) -> Slot | None:
        if self.available is None:
            remove_stale_objects()
        number = next(self._numbers)
        key = f"{_PREFIX}{os.getpid()}-{self._token}-{number}"
        region = f"{_PREFIX}{self._token}-{number}"
        try:
            mapping = _create_object(key, size)
        except OSError as exc:
            log.warning("shared-memory hop to %s: cannot create a slot: %s", self.address, exc)
            return None
        epoch = self._epoch
        slot = Slot(region, key, size, mapping, epoch)
        self._linked.add(slot)
        self._live_bytes += size
        request = pb.SystemSharedMemoryRegisterRequest(name=region, key=f"/{key}", byte_size=size)
        try:
            await self._register(request)
        except RunnerFleetError as exc:
            if epoch == self._epoch:
                self._live_bytes -= size
                if self.available is None:
                    self.available = False
                    log.info(
                        "worker %s cannot map this gateway's shared memory (%s); forwards to "
                        "it stay on gRPC",
                        self.address,
                        exc.message,
                    )
            self._unlink(slot)
            return None
        except BaseException:  # cancelled mid-call: the worker may hold it registered
            self._retire(slot)
            raise
        if epoch != self._epoch:  # reset while registering
            self._retire(slot)
            return None
        self.available = True
        return slot

    def _unlink(self, slot: Slot) -> None:
        self._linked.discard(slot)
        slot.unlink()

    def _retire(self, slot: Slot) -> None:
        if slot.epoch == self._epoch:
            self._live_bytes -= slot.size
        self._unlink(slot)
        task = asyncio.get_running_loop().create_task(self._forget(slot.region))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forget(self, region: str) -> None:
        with contextlib.suppress(RunnerFleetError):
            await self._unregister(region)


def _create_object(key: str, size: int) -> mmap.mmap:
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(os.path.join(SHM_DIR, key), flags, 0o600)
    try:
        # reserve the pages now: a full /dev/shm is an error here, not a SIGBUS on first write
        os.posix_fallocate(fd, 0, size)
        return mmap.mmap(fd, size)
    except BaseException:
        os.unlink(os.path.join(SHM_DIR, key))
        raise
    finally:
        os.close(fd)


def remove_stale_objects() -> int:
    """Unlink hop objects left by gateway processes that no longer exist; how many."""
    return remove_files_of_dead_processes(SHM_DIR, _owner_pid)


def _owner_pid(name: str) -> int | None:
    match = _STALE.match(name)
    return int(match.group(1)) if match else None


def hop_request(request: bytes, slot: Slot) -> bytes | None:
    """``request`` with its raw inputs moved into ``slot``; None if the hop cannot carry it."""
    split = split_repeated_bytes(request, _RAW_INPUT_FIELD)
    if split is None:
        return None
    rest, raws = split
    try:
        header = codec.parse_infer_request(rest)
    except RunnerFleetError:  # the worker says what is wrong with it, as for any request
        return None
    inputs = header.inputs
    if not raws or len(raws) != len(inputs) or any(len(r) == 0 for r in raws):
        return None
    for tensor in inputs:
        if codec.SHM_REGION in tensor.parameters or tensor.HasField("contents"):
            return None
    offset = 0
    for tensor, raw in zip(inputs, raws, strict=True):
        if offset + len(raw) > slot.size:
            return None
        slot.write(offset, raw)
        params = tensor.parameters
        params[codec.SHM_REGION].string_param = slot.region
        params[codec.SHM_BYTE_SIZE].int64_param = len(raw)
        params[codec.SHM_OFFSET].int64_param = offset
        offset = codec.hop_align(offset + len(raw))
    header.parameters[codec.HOP_REGION].string_param = slot.region
    header.parameters[codec.HOP_OFFSET].int64_param = offset
    return header.SerializeToString()


def hop_response(response: bytes, slot: Slot) -> bytes:
    """The worker's answer with the outputs it wrote into ``slot`` back in raw entries."""
    split = split_repeated_bytes(response, _RAW_OUTPUT_FIELD)
    raws: list[bytes] | list[memoryview]
    if split is None:
        head = pb.ModelInferResponse.FromString(response)
        raws = list(head.raw_output_contents)
        head.ClearField("raw_output_contents")
    else:
        rest, raws = split
        head = pb.ModelInferResponse.FromString(rest)
    entries: list[bytes | memoryview] = []
    placed = 0
    with memoryview(slot.mapping) as view:
        for i, tensor in enumerate(head.outputs):
            params = tensor.parameters
            if codec.SHM_REGION in params and params[codec.SHM_REGION].string_param == slot.region:
                offset = params[codec.SHM_OFFSET].int64_param if codec.SHM_OFFSET in params else 0
                size = params[codec.SHM_BYTE_SIZE].int64_param
                if not 0 <= offset <= offset + size <= slot.size:
                    raise Internal(
                        f"worker wrote output {tensor.name!r} outside its shared-memory slot"
                    )
                entries.append(view[offset : offset + size])
                for key in (codec.SHM_REGION, codec.SHM_BYTE_SIZE, codec.SHM_OFFSET):
                    params.pop(key, None)
                placed += 1
            else:
                entries.append(raws[i] if i < len(raws) else b"")
        if not placed:
            return response
        answer = append_repeated_bytes(head.SerializeToString(), _RAW_OUTPUT_FIELD, entries)
        entries.clear()  # the slot's views go before the slot can be reused or unmapped
    return answer
