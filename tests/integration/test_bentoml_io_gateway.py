"""Service APIs with JSON/Text/DataFrame/Image/File/Multipart IO, Context and hooks, over gRPC.

A real worker hosts the service's custom runner (``worker --service``) and a real gateway runs
its APIs (``gateway --service``); requests are plain Open Inference Protocol ModelInfer calls
with BYTES tensors, as any tritonclient user would send them.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest

from protos import codec
from protos.errors import NotFound
from runnerfleet.client import Client
from tests.support import procs
from tests.support.gateway_procs import start_gateway

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

pd = pytest.importorskip("pandas")
PIL = pytest.importorskip("PIL.Image")

SPEC = "tests.integration.bentoml_examples.io_service:svc"


def _bytes(value: bytes) -> np.ndarray:
    out = np.empty(1, dtype=object)
    out[0] = value
    return out


def _env(home, hook_file) -> dict[str, str]:
    return {**os.environ, "RUNNERFLEET_HOME": str(home), "RF_TEST_HOOK_FILE": str(hook_file)}


@pytest.fixture(scope="module")
def io_worker(tmp_path_factory):
    home = tmp_path_factory.mktemp("rfhome")
    worker = procs.start_worker("", home, env=_env(home, home / "worker-hooks.log"), service=SPEC)
    try:
        procs.wait_serving(worker.address, 60)
        yield worker, home
    finally:
        procs.stop(worker)


@pytest.fixture(scope="module")
def io_gateway(io_worker):
    worker, home = io_worker
    env = _env(home, home / "gateway-hooks.log")
    gateway = start_gateway([worker.address], env=env, service=SPEC)
    try:
        yield gateway
    finally:
        procs.stop(gateway)


@pytest.fixture
def client(io_gateway):
    with Client(io_gateway.address, timeout_s=30, retries=0) as c:
        yield c


def _call(client, api, arrays, names, **params):
    request = codec.encode_request(api, arrays, input_names=names)
    for key, value in params.items():
        request.parameters[key].string_param = value
    response = client.infer_request(request)
    return response, codec.decode_response_outputs(response)


def test_json_api(client):
    body = json.dumps({"item": "pen", "price": 1.25, "quantity": 4}).encode()
    response, (out,) = _call(client, "total", [_bytes(body)], ["input__0"])
    assert json.loads(out[0]) == {"item": "pen", "total": 5.0}
    assert response.outputs[0].datatype == "BYTES"
    assert response.outputs[0].parameters["content_type"].string_param == "application/json"


def test_text_api_with_context_and_startup_state(client):
    response, (out,) = _call(client, "shout", [_bytes(b"hi")], ["input__0"], suffix="!")
    assert out[0] == b"hello HI!"
    assert response.parameters["x-length"].string_param == "2"


def test_dataframe_in_series_out_through_a_custom_runner(client):
    a, b = np.array([1.0, 2.0]), np.array([10, 20], dtype=np.int64)
    _, (out,) = _call(client, "frame_sum", [a, b], ["a", "b"])
    np.testing.assert_array_equal(out, [11.0, 22.0])


def test_image_api(client):
    picture = PIL.new("RGB", (3, 1))
    picture.putpixel((0, 0), (255, 0, 0))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    response, (out,) = _call(client, "mirror", [_bytes(buffer.getvalue())], ["input__0"])
    mirrored = PIL.open(io.BytesIO(out[0]))
    assert mirrored.getpixel((2, 0)) == (255, 0, 0)
    assert response.outputs[0].parameters["content_type"].string_param == "image/png"


def test_file_and_multipart(client):
    _, (out,) = _call(client, "file_size", [_bytes(b"\x00" * 1000)], ["input__0"])
    assert json.loads(out[0]) == {"bytes": 1000}
    values = np.array([1.0, 2.5], np.float32)
    _, (out,) = _call(client, "annotate", [values, _bytes(b"note")], ["values", "note"])
    assert json.loads(out[0]) == {"note": "note", "sum": 3.5}


def test_status_code_from_context(client):
    with pytest.raises(NotFound, match="status 404"):
        client.infer("gone", np.zeros(2))


def test_metadata_lists_the_wire_tensors(client):
    meta = client.model_metadata("annotate")
    assert [(t.name, t.datatype) for t in meta.inputs] == [("note", "BYTES"), ("values", "FP32")]
    assert [(t.name, t.datatype, list(t.shape)) for t in client.model_metadata("total").inputs] == [
        ("input__0", "BYTES", [1])
    ]


def test_hooks_run_at_start_and_stop(io_worker, tmp_path):
    """A gateway of its own (the module's serves the other tests, in any order): its hooks run
    once at start, and on_shutdown when SIGTERM stops it."""
    worker, home = io_worker
    hook_file = tmp_path / "hooks.log"
    gateway = start_gateway([worker.address], env=_env(home, hook_file), service=SPEC)
    try:
        assert hook_file.read_text().splitlines() == ["deployment", "startup"]
    finally:
        rc = procs.stop(gateway)  # stopped even when the first assertion fails
    assert rc == 0, gateway.log[-2000:]
    assert hook_file.read_text().splitlines() == ["deployment", "startup", "shutdown hello"]
