"""Bad input gets the right status and an actionable message; good peers are unaffected."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from protos import codec
from protos import grpc_service_pb2 as pb

pytestmark = pytest.mark.integration

X = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])


def _error(stub, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request)
    return info.value


@pytest.mark.parametrize(
    ("request_", "needle"),
    [
        (codec.encode_request("no_such_model", [X]), "no_such_model"),
        (codec.encode_request("iris_clf", [X], model_version="v404"), "v404"),
        (codec.encode_request("iris_clf", [X], method="transform"), "transform"),
    ],
    ids=["model", "version", "method"],
)
def test_unknown_names_are_not_found(stub, request_, needle: str) -> None:
    err = _error(stub, request_)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert needle in err.details()


def _raw_request(datatype: str, shape: list[int], raw: bytes) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name="iris_clf")
    req.inputs.add(name="input__0", datatype=datatype, shape=shape)
    req.raw_input_contents.append(raw)
    return req


@pytest.mark.parametrize(
    ("request_", "needle"),
    [
        (codec.encode_request("iris_clf", [X.astype(np.float32)]), "must be FP64, got FP32"),
        (codec.encode_request("iris_clf", [X, X]), "takes 1 input"),
        (codec.encode_request("iris_clf", [np.zeros((2, 5))]), "must have shape [-1, 4]"),
        (codec.encode_request("iris_clf", [np.zeros(4)]), "must have shape"),
        (_raw_request("FP64", [2, 4], b"\0" * 63), "63"),
        (_raw_request("FP99", [2, 4], b"\0" * 64), "FP99"),
    ],
    ids=["datatype", "input-count", "trailing-shape", "rank", "raw-length", "unknown-datatype"],
)
def test_malformed_input_is_invalid_argument(stub, request_, needle: str) -> None:
    err = _error(stub, request_)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.details(), err.details()


def test_message_over_the_limit_is_resource_exhausted(stub) -> None:
    x = np.zeros((20, 1024, 1024), np.uint8)  # 20 MiB > the worker's 16 MiB limit
    err = _error(stub, codec.encode_request("echo", [x]))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_model_error_fails_only_the_offending_requests(stub) -> None:
    """Concurrent good and bad requests to one batching model: only the bad ones fail."""
    goods = [np.full((1 + i % 3, 4), i, np.float32) for i in range(24)]
    bads = [np.full((1, 4), -1.0, np.float32) for _ in range(4)]
    jobs = [("good", g) for g in goods]
    for k, b in enumerate(bads):
        jobs.insert(5 * k + 2, ("bad", b))

    def call(job):
        kind, x = job
        try:
            resp = stub.ModelInfer(codec.encode_request("picky", [x]), timeout=30)
            return kind, x, codec.decode_response_outputs(resp)[0], None
        except grpc.RpcError as exc:
            return kind, x, None, exc

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, jobs * 3))
    for kind, x, out, err in results:
        if kind == "good":
            assert err is None, err
            np.testing.assert_array_equal(out, x * 2)
        else:
            assert err is not None
            assert err.code() == grpc.StatusCode.INTERNAL
            assert "picky refuses negative inputs" in err.details()
    # the worker keeps serving
    ok = stub.ModelInfer(codec.encode_request("picky", [np.ones((1, 4), np.float32)]))
    np.testing.assert_array_equal(codec.decode_response_outputs(ok)[0], np.full((1, 4), 2.0))


def test_bad_inputs_do_not_change_concurrent_good_answers(stub) -> None:
    bad_requests = [
        codec.encode_request("iris_clf", [X.astype(np.float32)]),
        codec.encode_request("iris_clf", [np.zeros((3, 7))]),
        codec.encode_request("nope", [X]),
    ]
    want = codec.decode_response_outputs(stub.ModelInfer(codec.encode_request("iris_clf", [X])))[0]

    def call(i):
        if i % 4 == 3:
            with pytest.raises(grpc.RpcError):
                stub.ModelInfer(bad_requests[i % 3])
            return None
        return codec.decode_response_outputs(
            stub.ModelInfer(codec.encode_request("iris_clf", [X]))
        )[0]

    with ThreadPoolExecutor(16) as pool:
        outs = [o for o in pool.map(call, range(64)) if o is not None]
    assert len(outs) == 48
    for out in outs:
        np.testing.assert_array_equal(out, want)
