"""The floor of a refused call: a bare grpc.aio server whose ModelInfer refuses at once.

No parsing (the handler gets the wire bytes and ignores them), no admission, no metrics, no
logging: `context.abort(RESOURCE_EXHAUSTED, ...)` and nothing else. The overload scenario
(bench/chaos_overload.py) sends it the same open-loop load as the gateway in the same run,
so its refusal latency and CPU per call say how much of the gateway's refusal figures any
Python gRPC server would pay on this machine at that rate (the message says "overloaded", so
the load generator counts its answers as refusals).

    python -m bench.refuse_floor serve --port-file F [--port 0]
"""

from __future__ import annotations

import argparse
from typing import Any

import grpc

from bench.grpc_serve import run, serve_until_signalled

__all__ = ["main"]

SERVICE = "inference.GRPCInferenceService"
MESSAGE = "overloaded (bench.refuse_floor refuses every call)"


async def _refuse(request: bytes, context: Any) -> bytes:
    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, MESSAGE)
    return b""  # never reached: abort raises


async def serve(port: int, port_file: str) -> None:
    server = grpc.aio.server()
    handlers = {"ModelInfer": grpc.unary_unary_rpc_method_handler(_refuse)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    await serve_until_signalled(server, port, port_file)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["serve"])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", required=True)
    a = p.parse_args(argv)
    run(serve(a.port, a.port_file))


if __name__ == "__main__":
    main()
