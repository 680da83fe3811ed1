"""Forced replace is atomic: readers see the old or the new version whole, never neither or a mix.

Two real processes force-import two different archives of the same tag, together, 30 rounds,
while real reader processes resolve the tag and hash every file against the manifest they
resolved (and sometimes load it through the verified path). Then 0 errors and 0 torn reads.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import pickle
import subprocess
import sys
import tarfile

import pytest
import replace_workers
import store_workers

import store
from store.manifest import CHUNK_BYTES

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

ROUNDS = 30
BLOB_BYTES = 3 * CHUNK_BYTES  # several chunks per file, so a read spans time


def _archives(tmp_path: pathlib.Path) -> tuple[str, str, str]:
    """(tag, archive A, archive B): one tag, different model and custom objects in each."""
    model = store.save_model(
        "sklearn", "swap", store_workers.Doubler(1), custom_objects={"blob": b"a" * BLOB_BYTES}
    )
    a = store.export_model(model.tag, str(tmp_path / "a.rfmodel"))
    with tarfile.open(a) as tar:
        entries = [(m, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]
    replaced = {
        "custom_objects.pkl": pickle.dumps({"blob": b"b" * BLOB_BYTES}),
        "model.joblib": _joblib_bytes(store_workers.Doubler(2)),
    }
    import hashlib

    manifest = json.loads(entries[0][1])
    for rel, data in replaced.items():
        manifest["files"][rel] = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "size_bytes": len(data),
        }
    replaced["manifest.json"] = json.dumps(manifest, indent=1, sort_keys=True).encode()
    b = tmp_path / "b.rfmodel"
    with tarfile.open(b, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            data = replaced.get(info.name, data)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    store.delete(model.tag)
    return str(model.tag), a, str(b)


def _joblib_bytes(obj: object) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(obj, buf)
    return buf.getvalue()


def _cli_get_verify(tag: str, home: pathlib.Path) -> tuple[int, str]:
    """(exit code, stderr) of a real `runnerfleet models get TAG --verify` process."""
    env = dict(os.environ, RUNNERFLEET_HOME=str(home))
    argv = [sys.executable, "-c", "from runnerfleet.cli import main; main()"]
    done = subprocess.run(
        [*argv, "models", "get", tag, "--verify", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stderr[-500:]


def test_concurrent_forced_replace_is_atomic_for_readers(store_home, tmp_path):
    tag, a, b = _archives(tmp_path)
    assert store.import_model(a).outcome == "created"
    ctx = replace_workers.context()
    barrier = ctx.Barrier(2)
    stop = ctx.Event()
    results = tmp_path / "results"
    results.mkdir()
    importers = [
        replace_workers.start(ctx, store_home, "importer", path, ROUNDS, barrier, str(results / n))
        for n, path in (("ia", a), ("ib", b))
    ]
    readers = [
        replace_workers.start(ctx, store_home, "reader", tag, stop, every, str(results / f"r{i}"))
        for i, every in enumerate((0, 7))
    ]
    cli_calls: list[tuple[int, str]] = []
    try:
        while any(p.is_alive() for p in importers) and len(cli_calls) < 20:
            cli_calls.append(_cli_get_verify(tag, store_home))
        for proc in importers:
            proc.join(timeout=150)
        stop.set()
        for proc in readers:
            proc.join(timeout=30)
    finally:
        for proc in importers + readers:
            if proc.is_alive():
                proc.kill()
    assert [p.exitcode for p in importers + readers] == [0] * 4
    out = {p.name: json.loads(p.read_text()) for p in results.iterdir()}
    for name in ("ia", "ib"):
        assert out[name]["errors"] == []
        assert sum(out[name]["outcomes"].values()) == ROUNDS
    replaced = sum(out[n]["outcomes"].get("replaced", 0) for n in ("ia", "ib"))
    assert replaced >= ROUNDS, out  # the two archives really did take turns
    for name in ("r0", "r1"):
        r = out[name]
        assert r["n_errors"] == 0, r["errors"]
        assert r["n_torn"] == 0, r["torn"]
        assert r["reads"] >= ROUNDS
    assert cli_calls, "at least one CLI get --verify should have raced the imports"
    assert [rc for rc, _ in cli_calls] == [0] * len(cli_calls), cli_calls
    seen = set(out["r0"]["manifests"]) | set(out["r1"]["manifests"])
    assert len(seen) == 2, "readers should have seen both versions"
    # after the race the tag is whole and the store holds exactly one version of it
    final = store.get(tag)
    assert store.get(tag).checked(store.TrustPolicy()).verified
    assert [str(m.tag) for m in store.list("swap")] == [str(final.tag)]
