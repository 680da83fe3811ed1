"""Child-process bodies for the store safety tests (spawned by multiprocessing; no pytest here)."""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any

from protos.errors import NotFound
from store import fs_store
from store.manifest import read_manifest, sha256_file


def context() -> Any:
    """A forkserver context with the store preloaded: real processes, started fast and clean."""
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["store_workers", "store", "joblib"])
    return ctx


def child(home: str, target: str, *args: Any) -> None:
    """Child entry point: use the test's store (the forkserver's env is from an older test)."""
    os.environ["RUNNERFLEET_HOME"] = home
    globals()[target](*args)


def start(ctx: Any, home: Any, target: str, *args: Any) -> Any:
    """Start ``target(*args)`` from this module in a child process using store ``home``."""
    proc = ctx.Process(target=child, args=(str(home), target, *args))
    proc.start()
    return proc


class Doubler:
    """A minimal estimator: the sklearn adapter accepts anything with ``predict``."""

    def __init__(self, seq: int = 0) -> None:
        self.seq = seq

    def predict(self, x: Any) -> Any:
        return x * 2


def save(name: str, seq: int, writer: str) -> str:
    import store

    model = store.save_model("sklearn", name, Doubler(seq), metadata={"writer": writer, "seq": seq})
    return str(model.tag)


def verify_version(path: str) -> str | None:
    """None if the version dir is whole (every manifest sha256 matches), else what is wrong.

    A version deleted while we read is whole by definition (it vanished at once).
    """
    try:
        manifest = read_manifest(path)
        for rel, entry in manifest["files"].items():
            if sha256_file(os.path.join(path, rel)) != entry["sha256"]:
                return f"{path}/{rel}: sha256 mismatch"
        return None
    except (FileNotFoundError, NotADirectoryError):
        return None if not os.path.exists(path) else f"{path}: file missing while dir exists"
    except Exception as exc:  # noqa: BLE001 - any other failure is a finding
        if not os.path.exists(path):
            return None
        return f"{path}: {type(exc).__name__}: {exc}"


def check_latest_under_lock(store: fs_store.FileStore, name: str) -> str | None:
    """With the name lock held, `latest` must name the newest existing version."""
    with store.name_lock(name):
        versions = store.versions(name)
        pointed = store.read_latest(name)
        if not versions:
            return None if pointed is None else f"{name}: latest={pointed} but no versions"
        newest = max(versions, key=lambda v: (store.get(f"{name}:{v}").info.creation_time, v))
        if pointed != newest:
            return f"{name}: latest={pointed}, newest={newest}"
    return None


def _write(result_path: str, result: dict[str, Any]) -> None:
    with open(result_path + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(result_path + ".tmp", result_path)


def saver(writer: str, names: list[str], count: int, result_path: str) -> None:
    saved = [save(names[i % len(names)], i, writer) for i in range(count)]
    _write(result_path, {"saved": saved})


def deleter(name: str, pinned: str, stop: Any, result_path: str) -> None:
    import store

    rng = random.Random(os.getpid())
    deleted = []
    while not stop.is_set():
        candidates = [str(m.tag) for m in store.list(name) if str(m.tag) != pinned]
        if candidates:
            tag = rng.choice(candidates)
            try:
                store.delete(tag)
                deleted.append(tag)
            except NotFound:
                pass  # somebody else (another deleter) won the race
        time.sleep(0.005)
    _write(result_path, {"deleted": deleted})


def importer(archive: str, stop: Any, result_path: str) -> None:
    import store

    outcomes: dict[str, int] = {}
    while not stop.is_set():
        outcome = store.import_model(archive).outcome
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        time.sleep(0.01)
    _write(result_path, {"outcomes": outcomes})


def reader(names: list[str], stop: Any, result_path: str) -> None:
    import store

    fs = fs_store.default_store()
    problems: list[str] = []
    checks = 0
    while not stop.is_set():
        for name in names:
            for model in store.list(name):
                if (problem := verify_version(model.path)) is not None:
                    problems.append(problem)
                checks += 1
            try:
                latest = store.get(f"{name}:latest")
                if (problem := verify_version(latest.path)) is not None:
                    problems.append(problem)
            except NotFound:
                if name == names[0]:  # the first name has a pinned version: never missing
                    problems.append(f"{name}:latest not found")
            if (problem := check_latest_under_lock(fs, name)) is not None:
                problems.append(problem)
    _write(result_path, {"problems": problems, "checks": checks})


def pause_at(point: str, conn: Any) -> None:
    """Install a checkpoint hook that reports reaching ``point`` then sleeps until killed."""

    def hook(reached: str) -> None:
        if reached == point:
            conn.send(point)
            time.sleep(600)

    fs_store.CHECKPOINT_HOOK = hook


def save_and_pause(point: str, conn: Any, name: str) -> None:
    pause_at(point, conn)
    save(name, 99, "victim")
    conn.send("finished")


def delete_and_pause(point: str, conn: Any, tag: str) -> None:
    import store

    pause_at(point, conn)
    store.delete(tag)
    conn.send("finished")


def import_and_pause(point: str, conn: Any, archive: str) -> None:
    import store

    pause_at(point, conn)
    store.import_model(archive)
    conn.send("finished")


def save_forever(name: str, conn: Any) -> None:
    conn.send("started")
    i = 0
    while True:
        save(name, i, "loop")
        i += 1
