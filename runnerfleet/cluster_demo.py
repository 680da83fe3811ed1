"""The cluster demo: save the demo models, serve them with a local cluster, query, report, stop.

Saves iris_clf (scikit-learn) and digits_mlp (torch, trained on scikit-learn's digits) into the
store at $RUNNERFLEET_HOME, starts a gateway and two workers (runnerfleet.local_cluster, the code
behind `runnerfleet cluster up`), sends the whole datasets through the gateway with
runnerfleet.client and again with tritonclient (in a subprocess: tritonclient and our protos
cannot share a process), prints predictions, accuracies and a metrics summary, then stops
everything. `python -m runnerfleet.cluster_demo`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import numpy as np

__all__ = ["main"]

_WORKERS = 2


# Runs in a subprocess with nothing of ours imported (tritonclient registers inference.* too).
_TRITON_SCRIPT = """
import json, sys
import numpy as np
import tritonclient.grpc as triton
address, iris_path, digits_path = sys.argv[1:4]
client = triton.InferenceServerClient(address)
out = {"ready": client.is_server_ready()}
for model, path in (("iris_clf", iris_path), ("digits_mlp", digits_path)):
    x = np.load(path)
    datatype = "FP64" if x.dtype == np.float64 else "FP32"
    tensor = triton.InferInput("input__0", list(x.shape), datatype)
    tensor.set_data_from_numpy(x)
    result = client.infer(model, [tensor]).as_numpy("output__0")
    out[model] = (result if result.ndim == 1 else result.argmax(axis=1)).astype(int).tolist()
print(json.dumps(out))
"""


def _metrics_summary(host: str, port: int) -> list[str]:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    lines = []
    batch_sum = batch_count = 0.0
    for line in text.splitlines():
        if line.startswith(
            ("runnerfleet_gateway_requests_total{", "runnerfleet_gateway_worker_up{")
        ):
            if not line.endswith(" 0.0") or "worker_up" in line:
                lines.append("  " + line)
        elif line.startswith("runnerfleet_gateway_retries_total{"):
            lines.append("  " + line)
        elif line.startswith("runnerfleet_gateway_forward_batch_size_requests_sum"):
            batch_sum += float(line.split()[-1])
        elif line.startswith("runnerfleet_gateway_forward_batch_size_requests_count"):
            batch_count += float(line.split()[-1])
    if batch_count:
        lines.append(f"  mean requests per coalesced forward: {batch_sum / batch_count:.2f}")
    return lines


def _concurrent_rows(address: str, x: np.ndarray) -> None:
    """One request per row, all at once: spread over the replicas, coalesced per worker."""
    import asyncio

    from runnerfleet.client import AsyncClient

    async def send() -> None:
        async with AsyncClient(address, timeout_s=30) as client:
            await asyncio.gather(*(client.infer("iris_clf", x[i : i + 1]) for i in range(len(x))))

    asyncio.run(send())


def main() -> int:
    """Run the demo; exit code 0 when every answer came back and accuracies are sane."""
    import tempfile

    from runnerfleet import demo_models
    from runnerfleet.client import Client
    from runnerfleet.local_cluster import LocalCluster
    from store import default_root

    iris_tag, digits_tag = demo_models.save_iris(), demo_models.save_digits_torch()
    home = default_root()
    print(f"saved {iris_tag} and {digits_tag} in {home}")
    iris_x, iris_y = demo_models.iris_data()
    digits_x, digits_y = demo_models.digits_data()
    local = LocalCluster(
        workers=_WORKERS, models=[str(iris_tag), str(digits_tag)], port=0, metrics_port=0
    )
    print(f"starting a gateway and {_WORKERS} workers...")
    local.start()
    ok = True
    try:
        assert local.gateway is not None
        address = local.gateway.address
        print(
            f"cluster up: gateway {address}, workers {', '.join(w.address for w in local.workers)}"
        )
        with Client(address, timeout_s=30) as client:
            iris = np.asarray(client.infer("iris_clf", iris_x))
            proba = np.asarray(client.infer("iris_clf", iris_x[:1], method="predict_proba"))
            digits = np.asarray(client.infer("digits_mlp", digits_x)).argmax(axis=1)
        _concurrent_rows(address, iris_x)
        accuracy = {
            "iris_clf": float((iris == iris_y).mean()),
            "digits_mlp": float((digits == digits_y).mean()),
        }
        print("runnerfleet.client:")
        print(f"  iris_clf   predict(x[:8])  = {iris[:8].tolist()}  (true {iris_y[:8].tolist()})")
        print(f"  iris_clf   predict_proba(x[:1]) = {np.round(proba, 3).tolist()}")
        print(
            f"  digits_mlp argmax(x[:8])   = {digits[:8].tolist()}  (true {digits_y[:8].tolist()})"
        )
        print("  accuracy: " + ", ".join(f"{m} {a:.3f}" for m, a in accuracy.items()))
        with tempfile.TemporaryDirectory() as tmp:
            np.save(f"{tmp}/iris.npy", iris_x)
            np.save(f"{tmp}/digits.npy", digits_x)
            argv = [
                sys.executable,
                "-c",
                _TRITON_SCRIPT,
                address,
                f"{tmp}/iris.npy",
                f"{tmp}/digits.npy",
            ]
            run = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if run.returncode != 0:
            print(f"tritonclient failed:\n{run.stderr[-2000:]}")
            ok = False
        else:
            answers = json.loads(run.stdout.strip().splitlines()[-1])
            same = answers["iris_clf"] == iris.tolist() and answers["digits_mlp"] == digits.tolist()
            print(f"tritonclient: server ready {answers['ready']}, same predictions: {same}")
            ok = ok and same
        print("gateway metrics:")
        for line in _metrics_summary(local.gateway.host, local.gateway.metrics_port):
            print(line)
        ok = ok and accuracy["iris_clf"] > 0.9 and accuracy["digits_mlp"] > 0.9
    finally:
        print("stopping the cluster...")
        local.stop()
        print(
            "stopped; nothing left running"
            if not local.running()
            else "some processes did not stop"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
