"""The limit of one Python gRPC hop: a bare grpcio (asyncio) server answering ModelInfer.

No batching, no queue, no metrics, no routing: each ModelInfer is decoded with `protos.codec`,
run through the same store runnable the worker would load (same weights, same adapter), and
encoded back, inline on the event loop. It also answers what perf_analyzer needs (ServerMetadata
without the statistics extension, ModelMetadata, a synthesised ModelConfig with no dynamic
batching) and ServerLive/Ready/ModelReady. Started by the harness:

    python -m bench.bare_server --plan PLAN.json --port-file F [--port 0] [--models a,b]

RUNNERFLEET_HOME must point at the store the plan was made from.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import grpc

from bench.grpc_serve import run, serve_until_signalled, server_options
from protos import codec
from protos import grpc_service_pb2 as pb
from protos import grpc_service_pb2_grpc as pbg
from protos import model_config_pb2 as mc


class BareServicer(pbg.GRPCInferenceServiceServicer):
    def __init__(self, plan: dict, models: dict) -> None:
        self.plan = plan
        self.models = models  # name -> (callable, spec)

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=True)

    async def ModelReady(self, request, context):
        return pb.ModelReadyResponse(ready=request.name in self.models)

    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name="bench-bare-grpcio", version="0", extensions=[])

    def _spec(self, name: str, context):
        if name not in self.models:
            return None
        return self.models[name][1]

    async def ModelMetadata(self, request, context):
        spec = self._spec(request.name, context)
        if spec is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model {request.name!r}")
        t = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=request.name,
            versions=[spec.get("version", "")],
            platform=spec.get("platform", ""),
            inputs=[
                t(
                    name=spec["input_name"],
                    datatype=spec["datatype"],
                    shape=[-1, *spec["row_shape"]],
                )
            ],
            outputs=[
                t(
                    name=spec["output_name"],
                    datatype=spec["output_datatype"],
                    shape=[-1, *spec["output_row_shape"]],
                )
            ],
        )

    async def ModelConfig(self, request, context):
        spec = self._spec(request.name, context)
        if spec is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model {request.name!r}")
        cfg = mc.ModelConfig(
            name=request.name,
            platform=spec.get("platform", ""),
            max_batch_size=int(spec.get("max_batch_size", 64)),
            input=[
                mc.ModelInput(
                    name=spec["input_name"],
                    data_type=mc.DataType.Value("TYPE_" + spec["datatype"]),
                    dims=list(spec["row_shape"]),
                )
            ],
            output=[
                mc.ModelOutput(
                    name=spec["output_name"],
                    data_type=mc.DataType.Value("TYPE_" + spec["output_datatype"]),
                    dims=list(spec["output_row_shape"]) or [1],
                )
            ],
        )
        return pb.ModelConfigResponse(config=cfg)

    async def ModelInfer(self, request, context):
        entry = self.models.get(request.model_name)
        if entry is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model {request.model_name!r}")
        fn, spec = entry
        try:
            inputs = codec.decode_request_inputs(request)
            out = fn(*inputs)
        except Exception as e:  # noqa: BLE001 - a bare server: every failure is INVALID_ARGUMENT
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        arrays = list(out) if isinstance(out, tuple) else [out]
        names = (
            [spec["output_name"]]
            if len(arrays) == 1
            else [f"output__{i}" for i in range(len(arrays))]
        )
        return codec.encode_response(request, arrays, names)


def load_models(plan: dict, names: list[str]) -> dict:
    from store import get as store_get  # the store the worker uses

    models = {}
    for name in names:
        spec = plan["models"][name]
        runnable = store_get(spec["tag"]).load_runnable("cpu")
        method = spec.get("method") or runnable.default_method
        models[name] = (runnable.methods[method], spec)
    return models


async def serve(a: argparse.Namespace) -> None:
    plan = json.loads(pathlib.Path(a.plan).read_text())
    names = [m for m in a.models.split(",") if m] or list(plan["models"])
    models = load_models(plan, names)
    server = grpc.aio.server(options=server_options())
    pbg.add_GRPCInferenceServiceServicer_to_server(BareServicer(plan, models), server)
    await serve_until_signalled(server, a.port, a.port_file)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plan", required=True)
    p.add_argument("--models", default="")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", required=True)
    a = p.parse_args(argv)
    run(serve(a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
