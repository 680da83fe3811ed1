"""The real limit of one Python gRPC hop for big tensors: an echo that decodes nothing.

`bench/bare_server.py` runs each request through `protos.codec` and the store's runnable (the
same adapter path as RunnerFleet's worker: decode, call, encode: two copies of the tensor), so
it is RunnerFleet's own path without batching, not the bare hop. This server registers
`inference.GRPCInferenceService/ModelInfer` with no deserializer: the handler gets the request's
wire bytes, walks its top-level fields (a few varints), and answers with a ModelInferResponse
built from slices of those bytes: `model_name`, `model_version`, `id` and each `inputs` tensor
(field-compatible with `outputs`, renamed `output__0`) go back as they came, and
`raw_input_contents` (field 7) becomes `raw_output_contents` (field 6). The tensor's bytes are
never parsed or converted; the one copy left is the join that builds the response, which any
Python gRPC server must hand over as one bytes object. ModelReady/ServerLive answer too
(hand-encoded), so the harness's readiness check works.

    python -m bench.zerocopy_echo --port-file F [--port 0]
"""

from __future__ import annotations

import argparse
import sys

import grpc

from bench.grpc_serve import run, serve_until_signalled, server_options

__all__ = ["echo_response", "main"]

SERVICE = "inference.GRPCInferenceService"


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _enc_varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(field: int, payload) -> list:
    return [_enc_varint(field << 3 | 2), _enc_varint(len(payload)), payload]


def _rename_tensor(t: memoryview) -> bytes:
    """An InferInputTensor with its name (field 1) replaced by output__0, other fields kept."""
    parts: list = _ld(1, b"output__0")
    i = 0
    while i < len(t):
        start = i
        key, i = _varint(t, i)
        wire = key & 7
        if wire == 2:
            n, i = _varint(t, i)
            i += n
        elif wire == 0:
            _, i = _varint(t, i)
        else:
            raise ValueError(f"unexpected wire type {wire}")
        if key >> 3 != 1:
            parts.append(t[start:i])
    return b"".join(parts)


def echo_response(req: bytes) -> bytes:
    """ModelInferResponse wire bytes echoing the ModelInferRequest wire bytes `req`."""
    buf = memoryview(req)
    parts: list = []
    i = 0
    while i < len(buf):
        start = i
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 2:
            n, i = _varint(buf, i)
            body = buf[i : i + n]
            i += n
        elif wire == 0:
            _, i = _varint(buf, i)
            body = None
        else:
            raise ValueError(f"unexpected wire type {wire}")
        if field in (1, 2, 3):  # model_name, model_version, id: same numbers in the response
            parts.append(buf[start:i])
        elif field == 5 and body is not None:  # inputs -> outputs (field 5 in the response)
            parts += _ld(5, _rename_tensor(body))
        elif field == 7 and body is not None:  # raw_input_contents -> raw_output_contents
            parts += _ld(6, body)
        # 4 (parameters) and 6 (requested outputs) are not echoed
    return b"".join(parts)


async def _model_infer(request: bytes, context) -> bytes:
    return echo_response(request)


async def _ready(request: bytes, context) -> bytes:
    return b"\x08\x01"  # {ready: true} / {live: true}: field 1, varint 1


async def serve(a: argparse.Namespace) -> None:
    server = grpc.aio.server(options=server_options())
    handlers = {
        "ModelInfer": grpc.unary_unary_rpc_method_handler(_model_infer),
        "ModelReady": grpc.unary_unary_rpc_method_handler(_ready),
        "ServerLive": grpc.unary_unary_rpc_method_handler(_ready),
        "ServerReady": grpc.unary_unary_rpc_method_handler(_ready),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    await serve_until_signalled(server, a.port, a.port_file)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", required=True)
    run(serve(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
