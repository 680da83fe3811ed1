"""Hostile input: tiny requests that declare huge work are refused at once (issue 10, finding 3
and 4), while good clients running at the same time get exact answers and RSS stays bounded.

Real worker and gateway processes on loopback; every count is asserted, no timing.
"""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from protos import codec
from protos import grpc_service_pb2 as pb
from protos import grpc_service_pb2_grpc as pbg
from tests.chaos.hostile import LONG_NAME, empty_rows_request, garbage_inputs_request
from tests.support import procs
from tests.support.gateway_procs import start_gateway
from tests.support.rss import peak_rss_bytes, rss_bytes

HOSTILE_CALLS = 300  # per hostile client
GOOD_CLIENTS = 4
MAX_RSS_GROWTH_BYTES = 200 * 2**20
X = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])


@pytest.fixture(scope="module")
def cluster(chaos_store: pathlib.Path) -> Iterator[dict[str, procs.ProcessHandle]]:
    worker = procs.start_worker("iris_clf,echo", chaos_store)
    gateway = None
    try:
        procs.wait_serving(worker.address, 60)
        gateway = start_gateway([worker.address])
        yield {"worker": worker, "gateway": gateway}
    finally:
        if gateway is not None:
            procs.stop(gateway)
        assert procs.stop(worker) == 0, worker.log[-3000:]


def _raw_infer(channel: grpc.Channel):
    return channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")


def _good_client(address: str, stop: threading.Event, out: dict) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        want = None
        while not stop.is_set():
            try:
                got = codec.decode_response_outputs(
                    stub.ModelInfer(codec.encode_request("iris_clf", [X]), timeout=10)
                )[0]
            except grpc.RpcError as exc:
                out["failed"].append(exc.code().name)
                continue
            want = got if want is None else want
            out["ok" if np.array_equal(got, want) else "wrong"] += 1


def _hostile_client(address: str, request: bytes, out: dict) -> None:
    with grpc.insecure_channel(address) as channel:
        infer = _raw_infer(channel)
        for _ in range(HOSTILE_CALLS):
            try:
                infer(request, timeout=5)
                out["answered"] += 1
            except grpc.RpcError as exc:
                out["codes"][exc.code().name] = out["codes"].get(exc.code().name, 0) + 1


@pytest.mark.parametrize("target", ["worker", "gateway"])
def test_rows_without_data_are_refused_at_once_and_good_clients_are_exact(
    cluster: dict[str, procs.ProcessHandle], target: str
) -> None:
    address = cluster[target].address
    worker_pid = cluster["worker"].pid
    rss_before = rss_bytes(worker_pid)
    good = {"ok": 0, "wrong": 0, "failed": []}
    stop = threading.Event()
    goods = [
        threading.Thread(target=_good_client, args=(address, stop, good))
        for _ in range(GOOD_CLIENTS)
    ]
    hostile = [{"answered": 0, "codes": {}} for _ in range(2)]
    requests = [empty_rows_request("echo", 1 << 30), empty_rows_request("echo", 65536)]
    assert len(requests[0]) == 34
    bads = [
        threading.Thread(target=_hostile_client, args=(address, r, h))
        for r, h in zip(requests, hostile, strict=True)
    ]
    for t in goods + bads:
        t.start()
    for t in bads:
        t.join(120)
    stop.set()
    for t in goods:
        t.join(30)
    for h in hostile:
        assert h == {"answered": 0, "codes": {"INVALID_ARGUMENT": HOSTILE_CALLS}}, h
    assert good["failed"] == [], good
    assert good["wrong"] == 0, good
    assert good["ok"] >= GOOD_CLIENTS, good
    assert peak_rss_bytes(worker_pid) - rss_before < MAX_RSS_GROWTH_BYTES


def _error(call, request: bytes) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=10)
    return info.value


@pytest.mark.parametrize("target", ["worker", "gateway"])
def test_bad_requests_get_one_right_answer_each(
    cluster: dict[str, procs.ProcessHandle], target: str
) -> None:
    with grpc.insecure_channel(cluster[target].address) as channel:
        infer = _raw_infer(channel)
        cases = [
            (b"\xff\xff\xff", "INVALID_ARGUMENT", None),
            (garbage_inputs_request("echo"), "INVALID_ARGUMENT", None),
            (pb.ModelInferRequest().SerializeToString(), "INVALID_ARGUMENT",
             codec.MODEL_NAME_REQUIRED),
            (codec.encode_request(LONG_NAME, [X]).SerializeToString(), "INVALID_ARGUMENT",
             "10000 characters"),
        ]  # fmt: skip
        for request, code, needle in cases:
            err = _error(infer, request)
            assert err.code().name == code, (request[:40], err.code(), err.details())
            assert len(err.details() or "") < 400, err.details()
            if needle is not None:
                assert needle in err.details(), err.details()
        # 0 rows to a batchable sklearn method: 0 rows back, not INTERNAL
        stub = pbg.GRPCInferenceServiceStub(channel)
        zero = np.zeros((0, 4))
        response = stub.ModelInfer(codec.encode_request("iris_clf", [zero]))
        out = codec.decode_response_outputs(response)
        assert out[0].shape[0] == 0
    # the worker logged no traceback for any of it
    assert "Traceback" not in cluster["worker"].log


def test_the_gateway_does_not_retry_a_request_the_worker_could_not_parse(
    chaos_store: pathlib.Path, started: list[procs.ProcessHandle]
) -> None:
    """Two workers: a request only a full parse rejects reaches exactly one of them once."""
    import urllib.request

    workers = [procs.start_worker("echo", chaos_store) for _ in range(2)]
    started.extend(workers)
    for w in workers:
        procs.wait_serving(w.address, 60)
    gateway = start_gateway([w.address for w in workers])
    started.append(gateway)
    with grpc.insecure_channel(gateway.address) as channel:
        infer = _raw_infer(channel)
        for _ in range(10):
            assert _error(infer, garbage_inputs_request("echo")).code().name == "INVALID_ARGUMENT"
    url = f"http://127.0.0.1:{gateway.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    retries = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("runnerfleet_gateway_retries_total{")
    ]
    assert sum(retries) == 0, [line for line in text.splitlines() if "retries" in line]


def test_unparseable_stream_message_is_invalid_argument_at_the_worker(
    cluster: dict[str, procs.ProcessHandle],
) -> None:
    with grpc.insecure_channel(cluster["worker"].address) as channel:
        stream = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
        good = codec.encode_request("echo", [np.ones((1, 2), np.float32)]).SerializeToString()
        with pytest.raises(grpc.RpcError) as info:
            list(stream(iter([good, b"\xff\xff\xff"]), timeout=10))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert "Traceback" not in cluster["worker"].log


@pytest.mark.parametrize("target", ["worker", "gateway"])
def test_unparseable_requests_to_every_unary_rpc_are_invalid_argument(
    cluster: dict[str, procs.ProcessHandle], target: str
) -> None:
    """Not only ModelInfer: metadata, statistics, repository, shared-memory, trace and log
    settings rpcs answer bytes that are not their message with INVALID_ARGUMENT."""
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    unary = [m.name for m in service.methods if not m.client_streaming and not m.server_streaming]
    assert {"ServerMetadata", "TraceSetting", "LogSettings"} <= set(unary)
    with grpc.insecure_channel(cluster[target].address) as channel:
        for name in unary:
            call = channel.unary_unary(f"/inference.GRPCInferenceService/{name}")
            err = _error(call, b"\xff\xff\xff\xff")
            assert err.code().name == "INVALID_ARGUMENT", (name, err.code(), err.details())
        stub = pbg.GRPCInferenceServiceStub(channel)  # and it keeps serving
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
    assert "Traceback" not in cluster[target].log
