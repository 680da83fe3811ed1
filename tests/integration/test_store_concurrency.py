"""Many real processes saving, reading, deleting and importing the same names at once."""

from __future__ import annotations

import json
import os
import pathlib

import pytest
import store_workers

import store

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SAVES_PER_WRITER = 40


def test_concurrent_save_read_delete_import(store_home: pathlib.Path, tmp_path: pathlib.Path):
    ctx = store_workers.context()
    pinned = store_workers.save("alpha", -1, "pinned")
    imported = store_workers.save("alpha", -2, "imported")
    archive = store.export_model(imported, str(tmp_path / "alpha.rfmodel"))
    store.delete(imported)
    names = ["alpha", "beta"]
    results = tmp_path / "results"
    results.mkdir()
    stop = ctx.Event()

    savers = [
        store_workers.start(
            ctx, store_home, "saver", f"w{i}", names, SAVES_PER_WRITER, str(results / f"s{i}")
        )
        for i in range(3)
    ]
    others = [
        store_workers.start(ctx, store_home, "deleter", "alpha", pinned, stop, str(results / "d0")),
        store_workers.start(ctx, store_home, "deleter", "beta", "", stop, str(results / "d1")),
        store_workers.start(ctx, store_home, "importer", archive, stop, str(results / "i0")),
        store_workers.start(ctx, store_home, "reader", names, stop, str(results / "r0")),
    ]
    try:
        for proc in savers:
            proc.join(timeout=90)
        stop.set()
        for proc in others:
            proc.join(timeout=30)
    finally:
        for proc in savers + others:
            if proc.is_alive():
                proc.kill()
    assert [p.exitcode for p in savers + others] == [0] * len(savers + others)

    load = {p.name: json.loads(p.read_text()) for p in results.iterdir()}
    saved = {t for i in range(3) for t in load[f"s{i}"]["saved"]}
    deleted = set(load["d0"]["deleted"]) | set(load["d1"]["deleted"])
    assert len(saved) == 3 * SAVES_PER_WRITER
    assert load["r0"]["problems"] == []
    assert load["r0"]["checks"] > 0
    assert set(load["i0"]["outcomes"]) <= {"created", "unchanged"}
    assert deleted, "the deleters should have raced the savers at least once"

    present = {str(m.tag) for m in store.list()}
    assert saved - deleted <= present, "a saved version that nobody deleted was lost"
    assert present <= saved | {pinned, imported}
    assert pinned in present
    for model in store.list():
        assert store_workers.verify_version(model.path) is None
    fs = store.default_store()
    for name in names:
        assert store_workers.check_latest_under_lock(fs, name) is None
    leftovers = [e for e in os.listdir(store_home / "tmp") if not e.endswith(".lock")]
    assert leftovers == []
