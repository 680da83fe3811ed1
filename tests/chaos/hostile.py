"""Hand-made hostile requests for the chaos tests: tiny messages that declare huge work."""

from __future__ import annotations

from protos import grpc_service_pb2 as pb

__all__ = ["empty_rows_request", "garbage_inputs_request", "LONG_NAME"]

LONG_NAME = "m" * 10_000


def empty_rows_request(model: str, rows: int) -> bytes:
    """A FP32 request of shape [rows, 0]: zero elements, so it is 34 bytes for 2**30 rows."""
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="input__0", datatype="FP32", shape=[rows, 0])
    request.raw_input_contents.append(b"")
    return request.SerializeToString()


def garbage_inputs_request(model: str) -> bytes:
    """A valid routing header (model_name) followed by an `inputs` field that is not a tensor.

    The gateway reads only the header and forwards the bytes; the worker's full parse fails.
    """
    header = pb.ModelInferRequest(model_name=model).SerializeToString()
    junk = b"\xff\xff\xff\xff\x0f\x08"
    return header + b"\x22" + bytes([len(junk)]) + junk  # field 4 (inputs), length-delimited
