"""Serve the benchmark models in Triton through PyTriton (runs in the PyTriton peer venv).

Started by bench/peers.py with the peer venv's Python; imports nothing from the project. Reads
the model plan (bench/results/tmp/.../plan.json, written by bench/prepare.py) and binds:

- ``iris_clf``: the same fitted scikit-learn estimator (joblib file exported from the store),
  method from the plan (``predict``);
- ``heavy_mlp``: the same torch weights, as a TorchScript file traced from the stored module,
  run on the CPU under ``torch.inference_mode()``;
- ``echo``: identity on an FP32 tensor (bandwidth).

Each model gets `--instances` instances (a list of infer callables: PyTriton runs one model
instance per callable) and Triton's dynamic batcher (``max_batch_size`` and
``max_queue_delay_microseconds`` from the command line; 0 us is Triton's default).
Access-restricted endpoints (statistics among them) use the fixed token given with
``--token``; perf_analyzer passes it as the header
``triton-grpc-protocol-triton-access-token``. When the server is ready it writes ``--ready-file``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plan", required=True)
    p.add_argument("--models", default="", help="comma-separated subset of the plan's models")
    p.add_argument("--grpc-port", type=int, required=True)
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--metrics-port", type=int, required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--queue-delay-us", type=int, default=0)
    p.add_argument("--instances", type=int, default=1, help="model instances (infer callables)")
    p.add_argument("--workspace", required=True)
    p.add_argument("--ready-file", required=True)
    a = p.parse_args(argv)

    import numpy as np
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    plan = json.loads(pathlib.Path(a.plan).read_text())
    wanted = [m for m in a.models.split(",") if m] or list(plan["models"])
    config = ModelConfig(
        max_batch_size=a.max_batch_size,
        batcher=DynamicBatcher(max_queue_delay_microseconds=a.queue_delay_us),
    )
    tconf = TritonConfig(
        grpc_address="127.0.0.1",
        grpc_port=a.grpc_port,
        http_address="127.0.0.1",
        http_port=a.http_port,
        metrics_port=a.metrics_port,
        metrics_address="127.0.0.1",
        log_verbose=0,
    )
    security = TritonSecurityConfig(access_token=a.token)

    def np_dtype(name: str):
        return np.dtype(name).type

    triton = Triton(config=tconf, workspace=a.workspace, security_config=security)
    with triton:
        for name in wanted:
            spec = plan["models"][name]
            kind = spec["peer_kind"]
            in_name, out_name = spec["input_name"], spec["output_name"]
            in_shape = tuple(spec["row_shape"])
            out_shape = tuple(spec["output_row_shape"]) or (1,)
            if kind == "sklearn":
                import joblib

                est = joblib.load(spec["peer_artifact"])
                fn = getattr(est, spec["method"])
                scalar_out = not spec["output_row_shape"]

                def make_sklearn(fn=fn, scalar_out=scalar_out, in_name=in_name, out_name=out_name):
                    @batch
                    def infer(**inputs):
                        y = np.asarray(fn(inputs[in_name]))
                        if scalar_out:
                            y = y.reshape(-1, 1)
                        return {out_name: y}

                    return infer

                infer_fn = [make_sklearn() for _ in range(a.instances)]
            elif kind == "torchscript":
                import torch

                module = torch.jit.load(spec["peer_artifact"], map_location="cpu").eval()

                def make_torch(module=module, in_name=in_name, out_name=out_name):
                    @batch
                    def infer(**inputs):
                        with torch.inference_mode():
                            y = module(torch.from_numpy(np.ascontiguousarray(inputs[in_name])))
                        return {out_name: y.numpy()}

                    return infer

                infer_fn = [make_torch() for _ in range(a.instances)]
            elif kind == "identity":

                def make_echo(in_name=in_name, out_name=out_name):
                    @batch
                    def infer(**inputs):
                        return {out_name: inputs[in_name]}

                    return infer

                infer_fn = [make_echo() for _ in range(a.instances)]
            else:
                print(f"unknown peer kind {kind!r} for {name}", file=sys.stderr)
                return 2
            triton.bind(
                model_name=name,
                infer_func=infer_fn,
                inputs=[Tensor(name=in_name, dtype=np_dtype(spec["dtype"]), shape=in_shape)],
                outputs=[
                    Tensor(name=out_name, dtype=np_dtype(spec["output_dtype"]), shape=out_shape)
                ],
                config=config,
                strict=False,
            )
        triton.run()
        tmp = pathlib.Path(a.ready_file + ".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "grpc_port": a.grpc_port}))
        os.replace(tmp, a.ready_file)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        # Bounded: the harness stops us long before this; a forgotten server still exits.
        stop.wait(timeout=4 * 3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
