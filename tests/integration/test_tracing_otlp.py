"""OpenTelemetry across real processes: a test OTLP receiver sees one trace span gateway and worker.

Also: a malformed traceparent never fails a request, JSON log lines about a request carry its
request id and trace id, and request-duration histograms carry trace-id exemplars for
OpenMetrics scrapers.
"""

from __future__ import annotations

import json
import os
import pathlib
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from protos import codec
from protos import grpc_service_pb2_grpc as pb_grpc
from tests.integration.gateway_helpers import seed_store
from tests.support import procs
from tests.support.gateway_procs import start_gateway
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.integration

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
X = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


def _otel_env(receiver: OtlpReceiver, service: str) -> dict[str, str]:
    return dict(
        os.environ,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_SERVICE_NAME=service,
        OTEL_BSP_SCHEDULE_DELAY="50",
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, receiver) -> Iterator[tuple[procs.ProcessHandle, ...]]:
    home: pathlib.Path = tmp_path_factory.mktemp("tracing-store")
    tags = seed_store(home)
    worker = procs.start_worker(
        tags["iris_clf"],
        home,
        env=_otel_env(receiver, "rf-test-worker"),
        log_format="json",
        log_level="DEBUG",
    )
    gateway = None
    try:
        procs.wait_serving(worker.address)
        gateway = start_gateway(
            [worker.address],
            env=_otel_env(receiver, "rf-test-gateway"),
            log_format="json",
            log_level="DEBUG",
        )
        yield worker, gateway
    finally:
        if gateway is not None:
            assert procs.stop(gateway) == 0, gateway.log[-3000:]
        assert procs.stop(worker) == 0, worker.log[-3000:]


def _infer(address: str, traceparent: str | None, request_id: str = "") -> np.ndarray:
    metadata = (("traceparent", traceparent),) if traceparent else None
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = codec.encode_request("iris_clf", [X], request_id=request_id)
        response = stub.ModelInfer(request, metadata=metadata, timeout=30)
    return codec.decode_response_outputs(response)[0]


def _in_trace(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.trace_id == trace_id]


def test_one_trace_spans_gateway_and_worker(cluster, receiver) -> None:
    worker, gateway = cluster
    want = _infer(worker.address, None)
    np.testing.assert_array_equal(_infer(gateway.address, PARENT, "req-traced"), want)

    def complete(spans: list[ReceivedSpan]) -> bool:
        names = {(s.service, s.name) for s in _in_trace(spans, TRACE_ID)}
        return {
            ("rf-test-gateway", "gateway ModelInfer"),
            ("rf-test-gateway", "forward"),
            ("rf-test-worker", "worker ModelInfer"),
            ("rf-test-worker", "queue wait"),
            ("rf-test-worker", "batch"),
            ("rf-test-worker", "model call"),
        } <= names

    spans = {s.name: s for s in _in_trace(receiver.wait_for(complete), TRACE_ID)}
    gw, fwd, wk = spans["gateway ModelInfer"], spans["forward"], spans["worker ModelInfer"]
    assert gw.parent_span_id == PARENT.split("-")[2]  # the client's span is the parent
    assert fwd.parent_span_id == gw.span_id
    assert wk.parent_span_id == fwd.span_id  # carried over the forward hop
    assert spans["queue wait"].parent_span_id == wk.span_id
    assert (TRACE_ID, wk.span_id) in spans["batch"].links
    assert spans["model call"].parent_span_id == spans["batch"].span_id
    for span in (gw, wk):
        assert span.attributes["runnerfleet.model"] == "iris_clf"
        assert span.attributes["runnerfleet.status"] == "OK"
    assert wk.attributes["runnerfleet.method"] == "predict"
    assert spans["batch"].attributes["runnerfleet.batch_rows"] == 2


def test_coalesced_forwards_carry_one_traceparent_each(cluster, receiver) -> None:
    _, gateway = cluster
    parents = [f"00-{i:032x}-{i + 1:016x}-01" for i in range(1, 25)]
    with ThreadPoolExecutor(12) as pool:
        list(pool.map(lambda tp: _infer(gateway.address, tp), parents))
    ids = {tp.split("-")[1] for tp in parents}

    def every_worker_span_joined(spans: list[ReceivedSpan]) -> bool:
        joined = {s.trace_id for s in spans if s.name == "worker ModelInfer"}
        forwarded = {s.trace_id for s in spans if s.name == "forward"}
        return ids <= joined and ids <= forwarded

    spans = receiver.wait_for(every_worker_span_joined)
    for trace_id in ids:
        (wk,) = [s for s in _in_trace(spans, trace_id) if s.name == "worker ModelInfer"]
        (fwd,) = [s for s in _in_trace(spans, trace_id) if s.name == "forward"]
        assert wk.parent_span_id == fwd.span_id


def test_forward_batch_items_each_join_their_own_trace(cluster, receiver) -> None:
    """The worker's coalesced ForwardBatch: one traceparent per item, one trace per item."""
    from protos import internal_pb2, internal_pb2_grpc

    worker, _ = cluster
    parents = {f"{i:032x}": f"00-{i:032x}-{i + 7:016x}-01" for i in range(101, 105)}
    request = codec.encode_request("iris_clf", [X]).SerializeToString()
    items = [internal_pb2.ForwardItem(request=request, traceparent=tp) for tp in parents.values()]
    items.append(internal_pb2.ForwardItem(request=request, traceparent="not-a-traceparent"))
    with grpc.insecure_channel(worker.address) as channel:
        stub = internal_pb2_grpc.WorkerInternalStub(channel)
        reply = stub.ForwardBatch(internal_pb2.ForwardBatchRequest(items=items), timeout=30)
    assert [r.code for r in reply.results] == [0] * 5

    def joined(spans: list[ReceivedSpan]) -> bool:
        return set(parents) <= {s.trace_id for s in spans if s.name == "worker ModelInfer"}

    spans = receiver.wait_for(joined)
    for trace_id, tp in parents.items():
        (wk,) = [s for s in _in_trace(spans, trace_id) if s.name == "worker ModelInfer"]
        assert wk.parent_span_id == tp.split("-")[2]


def test_unsampled_context_is_carried_to_the_worker_and_recorded_nowhere(cluster, receiver):
    """A caller's unsampled decision (flags 00) holds in both processes; its logs keep the id."""
    worker, gateway = cluster
    unsampled_id = "5" * 32
    _infer(gateway.address, f"00-{unsampled_id}-{'6' * 16}-00", "req-unsampled")
    _infer(gateway.address, f"00-{'7' * 32}-{'8' * 16}-01")  # exported after the one above

    def both_exported(spans: list[ReceivedSpan]) -> bool:
        return {"rf-test-gateway", "rf-test-worker"} <= {
            s.service for s in _in_trace(spans, "7" * 32)
        }

    assert _in_trace(receiver.wait_for(both_exported), unsampled_id) == []
    lines = [json.loads(line) for line in worker.log_lines if line.startswith("{")]
    about = [line for line in lines if line.get("request_id") == "req-unsampled"]
    assert about, worker.log[-2000:]
    assert all(line["trace_id"] == unsampled_id for line in about)  # it reached the worker


@pytest.mark.parametrize("bad", ["garbage", "00-xyz-abc-01", f"ff-{TRACE_ID}-b7ad6b7169203331-01"])
def test_malformed_traceparent_starts_a_new_trace(cluster, receiver, bad: str) -> None:
    worker, gateway = cluster
    want = _infer(worker.address, None)
    for address in (worker.address, gateway.address):
        np.testing.assert_array_equal(_infer(address, bad), want)


def test_json_logs_carry_request_and_trace_ids(cluster, receiver) -> None:
    worker, gateway = cluster
    trace_id = "1234567890abcdef1234567890abcdef"
    _infer(gateway.address, f"00-{trace_id}-1234567890abcdef-01", "req-logged")
    receiver.wait_for(lambda spans: any(s.trace_id == trace_id for s in spans))
    for handle in (worker, gateway):
        lines = [json.loads(line) for line in handle.log_lines if line.startswith("{")]
        assert lines, handle.log[-2000:]
        about = [line for line in lines if line.get("request_id") == "req-logged"]
        assert about, handle.log[-2000:]
        assert all(line["trace_id"] == trace_id for line in about)


def test_request_histograms_carry_trace_exemplars(cluster, receiver) -> None:
    worker, gateway = cluster
    _infer(gateway.address, PARENT)
    for handle in (worker, gateway):
        request = urllib.request.Request(
            f"http://127.0.0.1:{handle.metrics_port}/metrics",
            headers={"Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            text = reply.read().decode()
        lines = [
            line
            for line in text.splitlines()
            if "_request_duration_seconds_bucket" in line and "trace_id=" in line
        ]
        assert lines, text[-2000:]
