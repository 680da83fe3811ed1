"""Serve the race's models with Ray Serve 2.x (runs in the Ray Serve peer venv).

Started by `bench/peers.py` with the peer venv's Python; imports nothing from the project. It
starts a local Ray head in this process (``ray.init``: ``num_cpus`` 2, no dashboard, a short
temp folder of its own), Serve's HTTP proxy on ``--host``/``--port``, and one deployment per
model at ``POST /<model>``: body ``{"x": [[...], ...]}`` (rows of the model's input), answer
the output rows as a JSON array. Each deployment batches with ``@serve.batch(max_batch_size,
batch_wait_timeout_s)``: the requests of a batch are concatenated into one model call and
the answer split back. ``max_ongoing_requests`` is raised from Serve's default (5) so a batch
can fill at concurrency 64; replicas ask for no CPU of their own, so all models fit beside the
proxy on two cores; access logs are off. When every deployment is up it writes
``--ready-file``; SIGTERM shuts Serve and Ray down.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import sys
import tempfile
import threading


def _loader(spec: dict):
    import numpy as np

    dtype = np.dtype(spec["dtype"])
    if spec["peer_kind"] == "sklearn":
        import joblib

        fn = getattr(joblib.load(spec["peer_artifact"]), spec["method"])
        return lambda x: np.asarray(fn(np.asarray(x, dtype=dtype)))
    if spec["peer_kind"] == "torchscript":
        import torch

        module = torch.jit.load(spec["peer_artifact"], map_location="cpu").eval()

        def run(x):
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=dtype))
            with torch.inference_mode():
                return module(t).numpy()

        return run
    raise ValueError(f"no Ray Serve runtime for peer kind {spec['peer_kind']!r}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plan", required=True)
    p.add_argument("--models", default="", help="comma-separated subset of the plan's models")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--batch-wait-timeout-s", type=float, default=0.002)
    p.add_argument("--max-ongoing-requests", type=int, default=256)
    p.add_argument("--ready-file", required=True)
    a = p.parse_args(argv)

    import numpy as np
    import ray
    from ray import serve
    from ray.serve.config import HTTPOptions
    from starlette.requests import Request

    plan = json.loads(pathlib.Path(a.plan).read_text())
    wanted = [m for m in a.models.split(",") if m] or list(plan["models"])
    # Ray's session folder holds unix sockets whose paths must fit sockaddr_un (107 bytes).
    tmp = tempfile.mkdtemp(prefix="rf-ray-")
    ray.init(
        num_cpus=a.num_cpus,
        include_dashboard=False,
        _temp_dir=tmp,
        object_store_memory=256 * 2**20,
        log_to_driver=False,
        configure_logging=False,
    )
    serve.start(http_options=HTTPOptions(host=a.host, port=a.port))

    @serve.deployment(
        num_replicas=1,
        max_ongoing_requests=a.max_ongoing_requests,
        ray_actor_options={"num_cpus": 0},
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )
    class Model:
        def __init__(self, spec: dict) -> None:
            self.fn = _loader(spec)

        @serve.batch(max_batch_size=a.max_batch_size, batch_wait_timeout_s=a.batch_wait_timeout_s)
        async def run(self, xs: list) -> list:
            sizes = [len(x) for x in xs]
            y = self.fn(np.concatenate(xs) if len(xs) > 1 else xs[0])
            out, at = [], 0
            for n in sizes:
                out.append(y[at : at + n].tolist())
                at += n
            return out

        async def __call__(self, request: Request):
            body = await request.json()
            return await self.run(np.asarray(body["x"]))

    for name in wanted:
        # .bind comes from @serve.deployment, which mypy cannot see through
        app = Model.bind(plan["models"][name])  # type: ignore[attr-defined]
        serve.run(app, name=name, route_prefix=f"/{name}")
    ready = pathlib.Path(a.ready_file)
    tmp_ready = ready.with_suffix(".tmp")
    tmp_ready.write_text(json.dumps({"pid": os.getpid(), "http_port": a.port}))
    os.replace(tmp_ready, ready)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # Bounded: the harness stops us long before this; a forgotten server still exits.
    stop.wait(timeout=4 * 3600)
    try:
        serve.shutdown()
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
