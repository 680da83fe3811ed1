"""A small load generator for tests/deploy: good requests and a few bad ones through a gateway.

Imports the generated protos (fine in the main pytest process; tests/compat runs on its own).
Input names, datatypes and shapes come from the gateway's ModelMetadata, so this follows the
demo models whatever dtype they were saved with.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections import Counter
from dataclasses import dataclass

import grpc
import numpy as np

from protos import grpc_service_pb2 as pb
from protos import grpc_service_pb2_grpc as pb_grpc

NP_OF = {
    "FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT64": np.int64,
    "INT32": np.int32, "INT16": np.int16, "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_,
}  # fmt: skip


@dataclass(frozen=True)
class InputSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]


def metadata(stub: pb_grpc.GRPCInferenceServiceStub, model: str) -> list[InputSpec]:
    reply = stub.ModelMetadata(pb.ModelMetadataRequest(name=model), timeout=10)
    return [InputSpec(t.name, t.datatype, tuple(t.shape)) for t in reply.inputs]


def make_request(
    model: str, inputs: list[InputSpec], rows: int, method: str | None = None,
    break_shape: bool = False, rng: np.random.Generator | None = None,
) -> pb.ModelInferRequest:  # fmt: skip
    rng = rng or np.random.default_rng(0)
    req = pb.ModelInferRequest(model_name=model)
    if method:
        req.parameters["method"].string_param = method
    for spec in inputs:
        shape = [rows if d < 0 else d for d in spec.shape] or [rows]
        shape[0] = rows
        if break_shape:
            shape[-1] = max(1, shape[-1] - 1)
        arr: np.ndarray = rng.random(shape).astype(NP_OF.get(spec.datatype, np.float32))
        req.inputs.add(name=spec.name, datatype=spec.datatype, shape=shape)
        req.raw_input_contents.append(arr.tobytes())
    return req


class Load:
    """Sends a mix of requests from several threads; counts gRPC codes by kind."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)
        self.codes: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def close(self) -> None:
        self.channel.close()

    def call(self, kind: str, req: pb.ModelInferRequest) -> pb.ModelInferResponse | None:
        try:
            reply = self.stub.ModelInfer(req, timeout=30)
            code = "OK"
        except grpc.RpcError as exc:
            reply, code = None, exc.code().name
        with self._lock:
            self.codes[(kind, code)] += 1
        return reply

    def run(self, seconds: float, threads: int = 8) -> Counter[tuple[str, str]]:
        iris = metadata(self.stub, "iris_clf")
        digits = metadata(self.stub, "digits_mlp")
        stop = time.monotonic() + seconds

        def worker(seed: int) -> None:
            rng = np.random.default_rng(seed)
            i = 0
            while time.monotonic() < stop:
                i += 1
                rows = int(rng.integers(1, 9))
                if i % 25 == 0:  # unknown model: NOT_FOUND
                    self.call("bad", make_request("no_such_model", iris, rows, rng=rng))
                elif i % 25 == 12:  # wrong feature count: INVALID_ARGUMENT
                    self.call("bad", make_request("iris_clf", iris, rows, "predict", True, rng))
                elif i % 3 == 0:
                    self.call("good", make_request("digits_mlp", digits, rows, rng=rng))
                elif i % 3 == 1:
                    self.call("good", make_request("iris_clf", iris, rows, "predict", rng=rng))
                else:
                    self.call(
                        "good", make_request("iris_clf", iris, rows, "predict_proba", rng=rng)
                    )

        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            for f in [pool.submit(worker, s) for s in range(threads)]:
                f.result()
        return self.codes
