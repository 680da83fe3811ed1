"""Put the benchmark models in a fresh store and export the same weights for the peers.

Run by the harness in its own process (it imports torch) with RUNNERFLEET_HOME pointing at the
run's store:

    python -m bench.prepare --out-dir DIR --models iris_clf,heavy_mlp,echo \
        [--inprocess-out DIR/inprocess.json --inprocess-seconds S]

Writes DIR/plan.json: per model its store tag, method, input/output names, datatypes and row
shapes (from the stored signature), the peer artifact (a joblib file of the same fitted
scikit-learn estimator; a TorchScript trace of the same torch module) and a verification input
and reference output (DIR/<model>.verify_in.npy / .verify_ref.npy) computed in-process, which
every served system must reproduce.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

ECHO_ELEMENTS = 1 << 20  # 4 MiB of FP32 per request

_NP_TO_OIP = {
    "float32": "FP32",
    "float64": "FP64",
    "float16": "FP16",
    "int64": "INT64",
    "int32": "INT32",
    "int16": "INT16",
    "int8": "INT8",
    "uint8": "UINT8",
    "bool": "BOOL",
}


def _oip(dtype: str) -> str:
    return _NP_TO_OIP.get(str(np.dtype(dtype)), str(dtype).upper())


# Distinct inputs per request: a pool of POOL[model] requests of up to MAX_ROWS[model] rows each,
# with the in-process answers, so the load generator can check every answer it gets.
POOL = {"echo": 4, "resnet18": 4, "transformer": 16}
MAX_ROWS = {"echo": 1, "resnet18": 8, "transformer": 8}
FALLBACK_ROWS = {
    "iris_clf": [4],
    "heavy_mlp": [64],
    "echo": [-1],
    "resnet18": [3, 224, 224],
    "hgb": [32],
    "transformer": [128, 128],
}


def _seed(name: str):
    from bench import race_models
    from runnerfleet import demo_models

    fn = {"iris_clf": "save_iris", "heavy_mlp": "save_heavy_mlp", "echo": "save_echo"}.get(name)
    if fn:
        return getattr(demo_models, fn)()
    return getattr(race_models, f"save_{name}")()


def _inputs(name: str, n: int, row: list[int], dtype: str, rng) -> np.ndarray:
    if name == "iris_clf":  # near the data, so every class shows up
        from sklearn.datasets import load_iris

        base = load_iris().data
        x = base[rng.integers(0, len(base), n)] + 0.3 * rng.standard_normal((n, 4))
        return x.astype(dtype)
    return rng.standard_normal((n, *row)).astype(dtype)


def _call(fn, x: np.ndarray) -> np.ndarray:
    y = fn(x)
    return np.asarray(y[0] if isinstance(y, tuple) else y)


def _pool(name: str, fn, row: list[int], dtype: str, out_dir: pathlib.Path) -> dict:
    """POOL x MAX_ROWS distinct rows and their in-process answers (torch: 64 rows a call)."""
    rng = np.random.default_rng(4321)
    p, r = POOL.get(name, 64), MAX_ROWS.get(name, 64)
    if name == "echo":
        x = rng.standard_normal((p, 1, ECHO_ELEMENTS)).astype(dtype)
        y = x.copy()
    else:
        flat = _inputs(name, p * r, row, dtype, rng)
        step = 64 if name in ("heavy_mlp", "resnet18", "transformer") else len(flat)
        outs = [_call(fn, flat[i : i + step]) for i in range(0, len(flat), step)]
        y_flat = np.concatenate(outs)
        x = flat.reshape(p, r, *flat.shape[1:])
        y = y_flat.reshape(p, r, *y_flat.shape[1:])
    np.save(out_dir / f"{name}.pool_in.npy", x)
    np.save(out_dir / f"{name}.pool_out.npy", y)
    return {
        "pool_in": str(out_dir / f"{name}.pool_in.npy"),
        "pool_out": str(out_dir / f"{name}.pool_out.npy"),
        "pool_requests": p,
        "max_rows": r,
    }


def _torch_weights_sha256(module) -> str:
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _file_sha256(path: pathlib.Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def memory_bandwidth(nbytes: int = 4 * 2**20, seconds: float = 0.3) -> dict:
    """numpy copy of an `nbytes` buffer into another: GiB/s (read + write counted once)."""
    src = np.ones(nbytes, dtype=np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    n, t0 = 0, time.perf_counter()
    while n < 5 or time.perf_counter() - t0 < seconds:
        np.copyto(dst, src)
        n += 1
    dt = time.perf_counter() - t0
    return {
        "bytes": nbytes,
        "copies": n,
        "gib_per_s": n * nbytes / dt / 2**30,
        "copy_ms": dt / n * 1e3,
    }


def _row_shape(spec_shape, fallback: list[int]) -> list[int]:
    if not spec_shape:
        return fallback
    return [int(d) for d in list(spec_shape)[1:]]


def prepare(out_dir: pathlib.Path, names: list[str]) -> dict:
    import runnerfleet
    from store import get as store_get

    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    plan: dict = {"models": {}, "created": time.time()}
    for name in names:
        t0 = time.perf_counter()
        tag = str(_seed(name))
        model = store_get(tag)
        t_load = time.perf_counter()
        runnable = model.load_runnable("cpu")
        load_s = time.perf_counter() - t_load
        method = runnable.default_method
        sig = model.info.signatures.get(method)
        in_spec = sig.input_spec[0] if sig and sig.input_spec else None
        out_spec = sig.output_spec[0] if sig and sig.output_spec else None
        fallback_rows = FALLBACK_ROWS[name]
        row_shape = _row_shape(in_spec.shape if in_spec else None, fallback_rows)
        dtype = str(np.dtype(in_spec.dtype)) if in_spec else "float32"
        entry: dict = {
            "tag": f"{model.tag.name}:{model.tag.version}",
            "version": str(model.tag.version),
            "platform": model.info.module,
            "method": method,
            "batchable": bool(sig.batchable) if sig else True,
            "input_name": (in_spec.name if in_spec and in_spec.name else "input__0"),
            "dtype": dtype,
            "datatype": _oip(dtype),
            "row_shape": row_shape,
            "output_name": (out_spec.name if out_spec and out_spec.name else "output__0"),
            "max_batch_size": 64,
            "load_s": load_s,
        }
        # The request every load generator sends: one row.
        req_row = [ECHO_ELEMENTS] if name == "echo" else [d if d > 0 else 1 for d in row_shape]
        entry["request_shape"] = [1, *req_row]
        rng = np.random.default_rng(1234)
        if name == "iris_clf":
            from sklearn.datasets import load_iris

            vx = load_iris().data[::19][:8].astype(dtype)
        elif name == "resnet18":
            vx = rng.standard_normal((2, *req_row)).astype(dtype)
        elif name == "echo":
            vx = rng.standard_normal((2, 1024)).astype(dtype)
        else:
            vx = rng.standard_normal((8, *req_row)).astype(dtype)
        fn = runnable.methods[method]
        vy = fn(vx)
        vy = vy[0] if isinstance(vy, tuple) else vy
        vy = np.asarray(vy)
        np.save(out_dir / f"{name}.verify_in.npy", vx)
        np.save(out_dir / f"{name}.verify_ref.npy", vy)
        entry["verify_in"] = str(out_dir / f"{name}.verify_in.npy")
        entry["verify_ref"] = str(out_dir / f"{name}.verify_ref.npy")
        entry["output_dtype"] = str(vy.dtype)
        entry["output_datatype"] = _oip(str(vy.dtype))
        entry["output_row_shape"] = [int(d) for d in vy.shape[1:]]
        if name == "echo":
            entry["output_row_shape"] = [-1]
            entry["row_shape"] = [-1] if row_shape in ([], [-1]) else row_shape
        entry.update(_pool(name, fn, row_shape, dtype, out_dir))
        # Peer artifacts: the same weights.
        if model.info.module == "sklearn":
            import joblib

            est = runnerfleet.sklearn.load_model(entry["tag"])
            # Fit-time random generators (HistGradientBoosting's feature-subsample RNG) pickle
            # in numpy 2's format, which the Triton venv's numpy 1.26 cannot read; predict never
            # uses them, so the peers' copy goes without (every answer is still checked).
            for attr, val in list(vars(est).items()):
                if isinstance(val, np.random.Generator):
                    delattr(est, attr)
            path = out_dir / f"{name}.joblib"
            joblib.dump(est, path)
            entry["peer_kind"], entry["peer_artifact"] = "sklearn", str(path)
            entry["weights_sha256"] = _file_sha256(path)  # every peer loads this very file
        elif name == "echo":
            entry["peer_kind"], entry["peer_artifact"] = "identity", ""
        else:
            import torch

            module = runnerfleet.pytorch.load_model(entry["tag"]).eval()
            with torch.inference_mode():
                traced = torch.jit.trace(module, torch.from_numpy(np.ascontiguousarray(vx)))
            path = out_dir / f"{name}.torchscript.pt"
            traced.save(str(path))
            with torch.inference_mode():
                again = torch.jit.load(str(path))(torch.from_numpy(vx)).numpy()
            if not np.allclose(again, vy, rtol=1e-4, atol=1e-5):
                raise RuntimeError(f"TorchScript export of {name} disagrees with the stored model")
            sha = _torch_weights_sha256(module)
            if _torch_weights_sha256(torch.jit.load(str(path))) != sha:
                raise RuntimeError(f"TorchScript export of {name} holds other weights")
            entry["weights_sha256"] = sha  # stored module == exported trace, tensor by tensor
            entry["peer_kind"], entry["peer_artifact"] = "torchscript", str(path)
        entry["prepare_s"] = time.perf_counter() - t0
        plan["models"][name] = entry
    (out_dir / "plan.json").write_text(json.dumps(plan, indent=1))
    return plan


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", required=True)
    p.add_argument("--models", default="iris_clf,heavy_mlp,echo")
    p.add_argument(
        "--inprocess-out",
        default="",
        help="also run the in-process sweep "
        "(bench/inprocess.py) here, saving a process start; write its JSON there",
    )
    p.add_argument("--inprocess-seconds", type=float, default=1.0)
    p.add_argument("--inprocess-batches", default="", help='JSON {"model": [batch, ...]}')
    a = p.parse_args(argv)
    names = [m for m in a.models.split(",") if m]
    plan = prepare(pathlib.Path(a.out_dir), names)
    if a.inprocess_out:
        from bench.inprocess import sweep

        try:
            batches = json.loads(a.inprocess_batches) if a.inprocess_batches else None
            result = sweep(plan, names, a.inprocess_seconds, batches)
        except Exception as e:  # noqa: BLE001 - the harness records the missing sweep
            print(f"in-process sweep failed: {type(e).__name__}: {e}", file=sys.stderr)
            return 0
        result["memory_bandwidth"] = memory_bandwidth()
        pathlib.Path(a.inprocess_out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
