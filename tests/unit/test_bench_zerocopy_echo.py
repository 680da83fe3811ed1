"""The zero-copy echo (bench/zerocopy_echo.py) answers a valid ModelInferResponse, bytes intact."""

from __future__ import annotations

import numpy as np

from bench.zerocopy_echo import echo_response
from protos import grpc_service_pb2 as pb


def test_echo_response_is_a_model_infer_response_with_the_same_tensor() -> None:
    x = np.arange(300_000, dtype=np.float32)  # > 2**16 bytes: multi-byte length varints
    req = pb.ModelInferRequest(model_name="echo", model_version="3", id="req-7")
    t = req.inputs.add(name="input__0", datatype="FP32", shape=[1, x.size])
    t.parameters["p"].int64_param = 5
    req.outputs.add(name="output__0")
    req.raw_input_contents.append(x.tobytes())

    resp = pb.ModelInferResponse.FromString(echo_response(req.SerializeToString()))

    assert (resp.model_name, resp.model_version, resp.id) == ("echo", "3", "req-7")
    assert [(o.name, o.datatype, list(o.shape)) for o in resp.outputs] == [
        ("output__0", "FP32", [1, x.size])
    ]
    assert resp.outputs[0].parameters["p"].int64_param == 5
    assert np.array_equal(np.frombuffer(resp.raw_output_contents[0], np.float32), x)
