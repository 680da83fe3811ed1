"""Child-process bodies for the forced-replace race (spawned by multiprocessing; no pytest)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any

from store.manifest import read_manifest, sha256_file


def context() -> Any:
    """A forkserver context with the store preloaded: real processes, started fast and clean."""
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["replace_workers", "store", "joblib"])
    return ctx


def start(ctx: Any, home: Any, target: str, *args: Any) -> Any:
    proc = ctx.Process(target=_child, args=(str(home), target, *args))
    proc.start()
    return proc


def _child(home: str, target: str, *args: Any) -> None:
    os.environ["RUNNERFLEET_HOME"] = home  # the forkserver's env may be an older test's
    globals()[target](*args)


def _write(result_path: str, result: dict[str, Any]) -> None:
    with open(result_path + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(result_path + ".tmp", result_path)


def importer(archive: str, rounds: int, barrier: Any, result_path: str) -> None:
    """Force-import ``archive`` once per round, every round started together with the peer."""
    import store

    outcomes: dict[str, int] = {}
    errors: list[str] = []
    for _ in range(rounds):
        barrier.wait(timeout=60)
        try:
            outcome = store.import_model(archive, force=True).outcome
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        except Exception as exc:  # noqa: BLE001 - any failure is a finding
            errors.append(f"{type(exc).__name__}: {exc}")
    _write(result_path, {"outcomes": outcomes, "errors": errors})


def reader(tag: str, stop: Any, load_every: int, result_path: str) -> None:
    """Resolve ``tag`` and hash every file against the manifest it resolved, until ``stop``.

    A torn read is a file that does not match the manifest read from the same resolution.
    Every ``load_every``-th read also loads the model through the verified load path.
    """
    import store

    reads = 0
    torn: list[str] = []
    errors: list[str] = []
    manifests: dict[str, int] = {}
    while not stop.is_set():
        reads += 1
        try:
            model = store.get(tag)
            manifest = read_manifest(model.path)
            with open(os.path.join(model.path, "manifest.json"), "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            manifests[digest] = manifests.get(digest, 0) + 1
            for rel, entry in sorted(manifest["files"].items()):
                if sha256_file(os.path.join(model.path, rel)) != entry["sha256"]:
                    torn.append(f"read {reads}: {rel} does not match manifest {digest[:12]}")
            if load_every and reads % load_every == 0:
                model.load_model()
        except Exception as exc:  # noqa: BLE001 - NotFound, FileNotFoundError... all findings
            errors.append(f"read {reads}: {type(exc).__name__}: {exc}")
        time.sleep(0)
    _write(
        result_path,
        {
            "reads": reads,
            "torn": torn[:20],
            "n_torn": len(torn),
            "errors": errors[:20],
            "n_errors": len(errors),
            "manifests": manifests,
        },
    )
