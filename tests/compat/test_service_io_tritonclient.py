"""tritonclient calls Service APIs that take JSON, text and a DataFrame (own pytest process).

The IO descriptors' tensor mapping (docs/MIGRATING.md) is what a Triton client sends anyway:
a JSON document is one BYTES tensor, a DataFrame one tensor per column.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tritonclient.grpc as triton

from tests.support import procs
from tests.support.gateway_procs import start_gateway

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SPEC = "tests.integration.bentoml_examples.io_service:svc"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    home = tmp_path_factory.mktemp("rfhome")
    env = {**os.environ, "RUNNERFLEET_HOME": str(home)}
    worker = procs.start_worker("", home, env=env, service=SPEC)
    gateway = None
    try:
        procs.wait_serving(worker.address, 60)
        gateway = start_gateway([worker.address], env=env, service=SPEC)
        c = triton.InferenceServerClient(gateway.address)
        yield c
        c.close()
    finally:
        for handle in (gateway, worker):
            if handle is not None:
                procs.stop(handle)


def _bytes_input(name: str, data: bytes) -> triton.InferInput:
    tensor = triton.InferInput(name, [1], "BYTES")
    tensor.set_data_from_numpy(np.array([data], dtype=object))
    return tensor


def test_json_api_from_tritonclient(client):
    meta = client.get_model_metadata("total")
    assert [(t.name, t.datatype) for t in meta.inputs] == [("input__0", "BYTES")]
    body = json.dumps({"item": "pen", "price": 2.0, "quantity": 3}).encode()
    result = client.infer("total", [_bytes_input("input__0", body)])
    assert json.loads(result.as_numpy("output__0")[0]) == {"item": "pen", "total": 6.0}


def test_text_api_from_tritonclient(client):
    result = client.infer("shout", [_bytes_input("input__0", b"hey")])
    assert result.as_numpy("output__0")[0] == b"hello HEY"


def test_dataframe_api_from_tritonclient(client):
    a = triton.InferInput("a", [3], "FP64")
    a.set_data_from_numpy(np.array([1.0, 2.0, 3.0]))
    b = triton.InferInput("b", [3], "INT64")
    b.set_data_from_numpy(np.array([10, 20, 30], dtype=np.int64))
    result = client.infer("frame_sum", [a, b])
    np.testing.assert_array_equal(result.as_numpy("output__0"), [11.0, 22.0, 33.0])
