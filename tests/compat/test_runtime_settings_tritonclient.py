"""Triton's logging and trace extensions with tritonclient (gRPC and HTTP), worker and gateway.

`get_log_settings`/`update_log_settings` and `get_trace_settings`/`update_trace_settings` as
Triton's client documents them: every process answers for itself. A worker started with OTLP
export (to the test receiver) shows that `trace_count` and `trace_level` really change what
is sampled; the gateway, started without an exporter, reports tracing OFF and refuses to turn
it on with the reason.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.compat.test_worker_tritonclient_http import http_address
from tests.support import procs
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan

X = np.array([[5.1, 3.5, 1.4, 0.2]])


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


@pytest.fixture(scope="module")
def traced_worker(compat_store, tags, receiver) -> Iterator[procs.ProcessHandle]:
    env = dict(
        os.environ,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_SERVICE_NAME="rf-settings-worker",
        OTEL_BSP_SCHEDULE_DELAY="50",
    )
    handle = procs.start_worker(tags["iris"], compat_store, env=env)
    try:
        procs.wait_serving(handle.address, 60)
        yield handle
    finally:
        procs.stop(handle)


def _clients(handle) -> list[object]:
    return [
        grpcclient.InferenceServerClient(handle.address),
        httpclient.InferenceServerClient(http_address(handle)),
    ]


def _log_settings(client) -> dict:
    got = client.get_log_settings(as_json=True) if _is_grpc(client) else client.get_log_settings()
    return _plain(got)


def _plain(got: dict) -> dict:
    """gRPC's JSON form ({"settings": {k: {"bool_param": ...}}}) or HTTP's ({k: v}) as {k: v}.

    A default value (False, 0, "") is omitted from proto3 JSON: the kind is then empty.
    """
    if "settings" not in got:
        return got
    out: dict = {}
    for key, value in got["settings"].items():
        if not value:
            out[key] = {"log_verbose_level": 0, "log_file": "", "log_format": ""}.get(key, False)
            continue
        (kind,) = value.keys()
        out[key] = int(value[kind]) if kind == "uint32_param" else value[kind]
    return out


def _is_grpc(client) -> bool:
    return isinstance(client, grpcclient.InferenceServerClient)


def _infer(handle, n: int) -> None:
    client = grpcclient.InferenceServerClient(handle.address)
    inp = grpcclient.InferInput("input__0", list(X.shape), "FP64")
    inp.set_data_from_numpy(X)
    for _ in range(n):
        assert client.infer("iris_clf", [inp]).as_numpy("output__0") is not None


def test_log_settings_read_and_change_on_worker_and_gateway(worker, gateway) -> None:
    for handle in (worker, gateway):
        for client in _clients(handle):
            now = _log_settings(client)
            assert now == {
                "log_file": "",
                "log_info": True,
                "log_warning": True,
                "log_error": True,
                "log_verbose_level": 0,
                "log_format": "text",
            }, (handle.name, now)
            changed = client.update_log_settings({"log_verbose_level": 1, "log_warning": False})
            if _is_grpc(client):
                changed = _plain(client.get_log_settings(as_json=True))
            assert changed["log_verbose_level"] == 1
            assert changed["log_warning"] is False
            client.update_log_settings({"log_verbose_level": 0, "log_warning": True})
            assert _log_settings(client)["log_verbose_level"] == 0


def test_verbose_logging_writes_the_per_request_lines(gateway, worker) -> None:
    client = httpclient.InferenceServerClient(http_address(gateway))
    client.update_log_settings({"log_verbose_level": 1})
    try:
        before = len(gateway.log_lines)
        _infer(gateway, 3)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = gateway.log_lines[before:]
            if sum("ModelInfer model=iris_clf" in line for line in lines) >= 3:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"no per-request DEBUG lines: {gateway.log[-2000:]}")
    finally:
        client.update_log_settings({"log_verbose_level": 0})


@pytest.mark.parametrize(
    "changes", [{"log_format": "ISO8601"}, {"log_file": "/tmp/rf.log"}, {"log_colour": True}]
)
def test_bad_log_settings_are_invalid_argument_or_400(worker, changes) -> None:
    grpc_client, http_client = _clients(worker)
    with pytest.raises(InferenceServerException) as grpc_error:
        grpc_client.update_log_settings(changes)
    assert "INVALID_ARGUMENT" in str(grpc_error.value.status())
    with pytest.raises(InferenceServerException) as http_error:
        http_client.update_log_settings(changes)
    assert http_error.value.status() == "400"
    assert _log_settings(http_client)["log_format"] == "text"


def _trace_settings(client, model: str = "") -> dict:
    if _is_grpc(client):
        got = client.get_trace_settings(model_name=model, as_json=True)["settings"]
        return {key: value.get("value", []) for key, value in got.items()}
    got = client.get_trace_settings(model_name=model)
    return {key: value if isinstance(value, list) else [value] for key, value in got.items()}


def _worker_roots(spans: list[ReceivedSpan]) -> set[str]:
    return {s.trace_id for s in spans if s.name == "worker ModelInfer"}


def test_trace_count_and_level_change_what_a_worker_samples(traced_worker, receiver) -> None:
    grpc_client, http_client = _clients(traced_worker)
    for client in (grpc_client, http_client):
        now = _trace_settings(client)
        assert now["trace_mode"] == ["opentelemetry"]
        assert now["trace_level"] == ["TIMESTAMPS"]
        assert now["trace_rate"] == ["1"]
        assert now["trace_count"] == ["-1"]
        assert _trace_settings(client, "iris_clf") == now  # a model's are the process's
    _infer(traced_worker, 1)
    seen = receiver.wait_for(lambda spans: len(_worker_roots(spans)) >= 1)
    start = len(_worker_roots(seen))

    grpc_client.update_trace_settings(settings={"trace_count": "2"})
    _infer(traced_worker, 6)
    spans = receiver.wait_for(lambda s: len(_worker_roots(s)) >= start + 2)
    time.sleep(0.5)  # the exporter's batches: anything more would have arrived by now
    assert len(_worker_roots(receiver.wait_for(lambda s: True))) == start + 2, len(spans)
    assert _trace_settings(http_client)["trace_count"] == ["0"]

    http_client.update_trace_settings(settings={"trace_count": None, "trace_level": ["OFF"]})
    after_off = len(_worker_roots(receiver.wait_for(lambda s: True)))
    _infer(traced_worker, 4)
    time.sleep(0.5)
    assert len(_worker_roots(receiver.wait_for(lambda s: True))) == after_off
    assert _trace_settings(grpc_client)["trace_count"] == ["-1"]  # cleared: the start value

    grpc_client.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"]})
    _infer(traced_worker, 1)
    receiver.wait_for(lambda s: len(_worker_roots(s)) > after_off)


def test_tracing_off_at_the_gateway_is_reported_and_cannot_be_turned_on(gateway) -> None:
    grpc_client, http_client = _clients(gateway)
    assert _trace_settings(grpc_client)["trace_level"] == ["OFF"]
    with pytest.raises(InferenceServerException) as grpc_error:
        grpc_client.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"]})
    assert "FAILED_PRECONDITION" in str(grpc_error.value.status())
    assert "OTEL_TRACES_EXPORTER" in grpc_error.value.message()
    with pytest.raises(InferenceServerException) as http_error:
        http_client.update_trace_settings(model_name="iris_clf", settings={"trace_rate": "10"})
    assert http_error.value.status() == "501"  # per-model settings: not kept, says why


def test_server_metadata_lists_the_logging_and_trace_extensions(worker, gateway) -> None:
    for handle in (worker, gateway):
        grpc_client, http_client = _clients(handle)
        assert {"logging", "trace"} <= set(grpc_client.get_server_metadata().extensions)
        assert {"logging", "trace"} <= set(http_client.get_server_metadata()["extensions"])
