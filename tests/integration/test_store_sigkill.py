"""A save, delete or import killed with SIGKILL leaves no visible partial version; the next
save removes the leftovers."""

from __future__ import annotations

import os
import pathlib
import random
import signal

import pytest
import store_workers

import store

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SAVE_POINTS = [
    "staging_created",
    "files_written",
    "manifest_written",
    "before_rename",
    "after_rename",
]


def _kill_at(ctx, home, target: str, point: str, arg: str) -> None:
    """Start ``target`` in a child, wait until it reports ``point``, then SIGKILL it."""
    parent, child = ctx.Pipe()
    proc = store_workers.start(ctx, home, target, point, child, arg)
    try:
        assert parent.poll(60), f"child never reached {point}"
        assert parent.recv() == point
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=30)
        assert proc.exitcode == -signal.SIGKILL
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()


def _staging_dirs(home: pathlib.Path) -> list[str]:
    tmp = home / "tmp"
    return [e for e in os.listdir(tmp) if not e.endswith(".lock")] if tmp.exists() else []


def _assert_store_whole(home: pathlib.Path, name: str) -> set[str]:
    """Every visible version verifies; latest names one of them; return the visible tags."""
    models = store.list(name)
    for model in models:
        assert store_workers.verify_version(model.path) is None
    latest = store.get(f"{name}:latest")
    assert latest.tag in {m.tag for m in models}
    return {str(m.tag) for m in models}


@pytest.mark.parametrize("point", SAVE_POINTS)
def test_save_killed_at_each_point(store_home, point):
    ctx = store_workers.context()
    pinned = store_workers.save("alpha", 0, "pinned")
    _kill_at(ctx, store_home, "save_and_pause", point, "alpha")
    visible = _assert_store_whole(store_home, "alpha")
    if point == "after_rename":  # the rename happened: a whole new version, latest may lag
        assert len(visible) == 2
        assert pinned in visible
        assert _staging_dirs(store_home) == []
    else:
        assert visible == {pinned}
        assert len(_staging_dirs(store_home)) == 1  # the dead save's leftover
    newer = store_workers.save("alpha", 1, "next")
    assert _staging_dirs(store_home) == [], "the next save must clean dead leftovers"
    assert store.get("alpha:latest").tag == store.get(newer).tag
    assert pinned in _assert_store_whole(store_home, "alpha")


def test_delete_killed_midway(store_home):
    ctx = store_workers.context()
    first = store_workers.save("alpha", 0, "a")
    second = store_workers.save("alpha", 1, "b")
    _kill_at(ctx, store_home, "delete_and_pause", "after_delete_version", second)
    assert _assert_store_whole(store_home, "alpha") == {first}
    assert str(store.get("alpha:latest").tag) == first  # stale pointer falls back to a scan
    store_workers.save("alpha", 2, "c")
    assert _staging_dirs(store_home) == []


def test_import_killed_before_commit(store_home, tmp_path):
    ctx = store_workers.context()
    tag = store_workers.save("alpha", 0, "a")
    archive = store.export_model(tag, str(tmp_path / "a.rfmodel"))
    store.delete(tag)
    _kill_at(ctx, store_home, "import_and_pause", "import_verified", archive)
    assert store.list() == []
    assert store.import_model(archive).outcome == "created"
    assert _staging_dirs(store_home) == []


def test_save_killed_at_random_times(store_home):
    ctx = store_workers.context()
    rng = random.Random(1234)
    pinned = store_workers.save("alpha", 0, "pinned")
    for _ in range(4):
        parent, child = ctx.Pipe()
        proc = store_workers.start(ctx, store_home, "save_forever", "alpha", child)
        try:
            assert parent.poll(60)
            assert parent.recv() == "started"
            assert not parent.poll(rng.uniform(0.05, 0.4))
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(timeout=30)
        finally:
            if proc.is_alive():
                proc.kill()
                proc.join()
        assert pinned in _assert_store_whole(store_home, "alpha")
    store_workers.save("alpha", 1, "after")
    assert _staging_dirs(store_home) == []
    _assert_store_whole(store_home, "alpha")
