"""Forced replace and delete swap links: old readers keep whole content, collected after a grace."""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import pytest
from sklearn.dummy import DummyClassifier

import store
from store.archive import export_model
from store.manifest import build_manifest, read_manifest, sha256_file, write_manifest

X = [[0.0], [1.0], [2.0]]


def whole(model: store.Model) -> bool:
    manifest = read_manifest(model.path)
    return all(
        sha256_file(os.path.join(model.path, rel)) == e["sha256"]
        for rel, e in manifest["files"].items()
    )


@pytest.fixture
def two_archives(store_home, tmp_path):
    """(tag, archive A, archive B): the same tag, different content (B was saved over A)."""
    a = store.save_model(
        "sklearn", "m", DummyClassifier(strategy="constant", constant=0).fit(X, [0, 1, 2])
    )
    path_a = store.export_model(a.tag, str(tmp_path / "a.rfmodel"))
    b = store.save_model(
        "sklearn", "m", DummyClassifier(strategy="constant", constant=1).fit(X, [0, 1, 2])
    )
    # make B carry A's tag: rewrite its info/manifest in a scratch copy and export that
    scratch = store.FileStore(str(tmp_path / "scratch"))
    info = b.info.to_dict() | {
        "version": a.tag.version,
        "creation_time": a.info.creation_time.isoformat(),
    }
    with scratch.staging() as staged:
        for name in os.listdir(b.path):
            shutil.copy(os.path.join(b.path, name), staged)
        with open(os.path.join(staged, "info.json"), "w") as f:
            json.dump(info, f)
        write_manifest(staged, build_manifest(staged, str(a.tag)))
        with scratch.name_lock("m"):
            scratch.commit(staged, a.tag)
    path_b = export_model(a.tag, str(tmp_path / "b.rfmodel"), store=scratch)
    store.delete(b.tag)
    return a.tag, path_a, path_b


def test_replace_keeps_resolved_content_readable(two_archives):
    tag, _a, b = two_archives
    before = store.get(tag)
    assert store.import_model(b, force=True).outcome == "replaced"
    after = store.get(tag)
    assert after.path != before.path
    assert whole(before)
    assert whole(after)
    assert before.load_model().predict([[5.0]]).tolist() == [0]
    assert after.load_model().predict([[5.0]]).tolist() == [1]


def test_retired_content_collected_after_grace(two_archives, store_home, monkeypatch):
    tag, a, b = two_archives
    content = store_home / "models" / "m" / ".content"
    store.import_model(b, force=True)
    # the replaced content (and the deleted B version of the fixture) wait out their grace
    assert len(os.listdir(content)) == 3
    monkeypatch.setenv("RUNNERFLEET_RETIRED_GRACE_S", "0")
    store.import_model(a, force=True)
    assert os.listdir(content) == [os.path.basename(store.get(tag).path)]
    store.delete(tag)
    assert not (store_home / "models" / "m").exists()


def test_stale_link_from_a_killed_commit_is_removed(two_archives, store_home, monkeypatch):
    tag, _a, b = two_archives
    name_dir = store_home / "models" / "m"
    os.symlink(".content/nowhere", name_dir / ".link-dead")
    monkeypatch.setenv("RUNNERFLEET_RETIRED_GRACE_S", "0")
    store.import_model(b, force=True)
    assert not os.path.lexists(name_dir / ".link-dead")
    assert [m.tag for m in store.list("m")] == [tag]


def test_pre_link_store_replaced_in_one_exchange(two_archives, store_home):
    """A version folder in place (stores written before links) is swapped for a link."""
    tag, _a, b = two_archives
    link = pathlib.Path(store_home, "models", "m", str(tag.version))
    target = link.resolve()
    link.unlink()
    shutil.move(str(target), str(link))  # now a plain folder, as older stores have it
    assert store.get(tag).path == str(link)
    assert store.import_model(b, force=True).outcome == "replaced"
    assert link.is_symlink()
    assert whole(store.get(tag))
    assert store.get(tag).load_model().predict([[5.0]]).tolist() == [1]
