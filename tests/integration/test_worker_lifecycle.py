"""Worker lifecycle: drain on SIGTERM answers queued work; /metrics carries the contract names."""

from __future__ import annotations

import re
import signal
import time
import urllib.request

import grpc
import numpy as np
import pytest

from protos import codec
from protos import grpc_service_pb2_grpc as pb_grpc
from tests.support import procs

pytestmark = pytest.mark.integration


def scrape(handle: procs.ProcessHandle) -> str:
    url = f"http://127.0.0.1:{handle.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.read().decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_sigterm_drains_queued_requests(worker_store) -> None:
    handle = procs.start_worker("slow", worker_store, max_batch_size=1)
    try:
        procs.wait_serving(handle.address, 60)
        with grpc.insecure_channel(handle.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            xs = [np.full((1, 4), i, np.float32) for i in range(12)]
            futures = [
                stub.ModelInfer.future(codec.encode_request("slow", [x]), timeout=60) for x in xs
            ]
            deadline = time.monotonic() + 30
            while (
                queued := sample(scrape(handle), "runnerfleet_worker_queue_depth", model="slow")
                or 0
            ) < 5:
                assert time.monotonic() < deadline, "requests never queued"
                time.sleep(0.01)
            handle.proc.send_signal(signal.SIGTERM)
            answered = 0
            for x, fut in zip(xs, futures, strict=True):
                error = fut.exception()
                if error is not None:  # sent but not yet admitted when draining began
                    assert isinstance(error, grpc.RpcError), error
                    assert error.code() == grpc.StatusCode.UNAVAILABLE, error
                    continue
                out = codec.decode_response_outputs(fut.result())[0]
                np.testing.assert_array_equal(out, x + 1)
                answered += 1
            assert answered >= queued  # everything queued at SIGTERM was answered
        assert handle.proc.wait(60) == 0
        assert "DRAINING" in handle.log
    finally:
        procs.stop(handle)


def test_metrics_endpoint_has_contract_names(worker, stub) -> None:
    text = scrape(worker)
    # label sets are touched at start: present with zero before any request to predict_proba
    assert (
        sample(
            text,
            "runnerfleet_worker_requests_total",
            model="iris_clf",
            method="predict_proba",
            code="OK",
        )
        is not None
    )
    for name in (
        "runnerfleet_worker_request_duration_seconds_bucket",
        "runnerfleet_worker_queue_wait_seconds_bucket",
        "runnerfleet_worker_inference_duration_seconds_bucket",
        "runnerfleet_worker_batch_size_rows_bucket",
        "runnerfleet_worker_batch_size_requests_bucket",
        "runnerfleet_worker_queue_depth",
        "runnerfleet_worker_shed_total",
        "runnerfleet_worker_rejected_total",
    ):
        assert sample(text, name, model="echo", method="__call__") is not None, name
    assert sample(text, "runnerfleet_worker_model_load_seconds", model="iris_clf") > 0
    assert sample(text, "runnerfleet_worker_up", device="cpu") == 1.0
    assert sample(text, "runnerfleet_worker_shed_total", model="echo", reason="latency_budget") == 0
    assert re.search(r'runnerfleet_worker_batch_size_rows_bucket\{.*le="1024.0"', text)

    before = sample(
        text, "runnerfleet_worker_requests_total", model="echo", method="__call__", code="OK"
    )
    stub.ModelInfer(codec.encode_request("echo", [np.zeros((3, 2), np.float32)]))
    with pytest.raises(grpc.RpcError):
        stub.ModelInfer(codec.encode_request("echo", [np.zeros((3,), np.float32)]))
    text = scrape(worker)
    assert (
        sample(
            text, "runnerfleet_worker_requests_total", model="echo", method="__call__", code="OK"
        )
        == before + 1
    )
    assert (
        sample(
            text,
            "runnerfleet_worker_requests_total",
            model="echo",
            method="__call__",
            code="INVALID_ARGUMENT",
        )
        >= 1
    )
    assert (
        sample(
            text,
            "runnerfleet_worker_rejected_total",
            model="echo",
            method="__call__",
            reason="invalid_input",
        )
        >= 1
    )
    assert sample(text, "runnerfleet_worker_batch_size_rows_sum", model="echo") >= 3


def test_unknown_model_tag_makes_the_worker_exit_non_zero(worker_store) -> None:
    handle = procs.start_worker("no_such_model:v1", worker_store)
    try:
        assert handle.proc.wait(60) != 0
        assert "no_such_model" in handle.log
    finally:
        procs.stop(handle)


def test_cpus_flag_pins_the_process(worker_store) -> None:
    handle = procs.start_worker("iris_clf", worker_store, cpus="0", threads=1)
    try:
        procs.wait_serving(handle.address, 60)
        with open(f"/proc/{handle.pid}/status", encoding="utf-8") as f:
            allowed = next(line for line in f if line.startswith("Cpus_allowed_list"))
        assert allowed.split(":", 1)[1].strip() == "0"
    finally:
        assert procs.stop(handle) == 0
