"""Export/import of `.rfmodel` archives: round trip, and every malformed archive refused cleanly."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import tarfile

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import runnerfleet
import store
from protos.errors import AlreadyExists, InvalidArgument, NotFound


@pytest.fixture(scope="module")
def clf():
    x, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=1000).fit(x, y)


@pytest.fixture
def exported(store_home, clf, tmp_path):
    """(model, archive path) for a saved iris_clf."""
    m = runnerfleet.sklearn.save_model(
        "iris_clf", clf, labels={"a": "b"}, custom_objects={"k": 1}, metadata={"m": 1}
    )
    path = runnerfleet.models.export_model("iris_clf:latest", str(tmp_path / "iris.rfmodel"))
    return m, pathlib.Path(path)


def snapshot(home: pathlib.Path) -> dict[str, str]:
    """Every file under models/ with its sha256, plus anything left in tmp/."""
    out = {}
    for root, _dirs, files in os.walk(home):
        for name in files:
            p = pathlib.Path(root, name)
            rel = str(p.relative_to(home))
            if rel.startswith("locks"):
                continue
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def members(path: pathlib.Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar]


def write_tar(path: pathlib.Path, entries: list[tuple[tarfile.TarInfo, bytes]]) -> pathlib.Path:
    with tarfile.open(path, "w") as tar:
        for info, data in entries:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def reseal(entries):
    """Recompute the manifest so the archive is self-consistent."""
    manifest = json.loads({m.name: d for m, d in entries}["manifest.json"])
    for m, d in entries:
        if m.name in manifest["files"]:
            manifest["files"][m.name] = {
                "sha256": hashlib.sha256(d).hexdigest(),
                "size_bytes": len(d),
            }
    return [
        (m, json.dumps(manifest).encode() if m.name == "manifest.json" else d) for m, d in entries
    ]


def test_round_trip(exported, store_home):
    m, path = exported
    names = [info.name for info, _ in members(path)]
    assert names[0] == "manifest.json"
    assert "info.json" in names
    runnerfleet.models.delete(m.tag)
    assert runnerfleet.models.list() == []
    imported = runnerfleet.models.import_model(str(path))
    assert imported.tag == m.tag
    got = runnerfleet.models.get("iris_clf")
    assert got.custom_objects == {"k": 1}
    assert got.info.labels == {"a": "b"}
    assert got.info.metadata == {"m": 1}
    assert runnerfleet.sklearn.load_model(m.tag).predict(np.ones((1, 4))).shape == (1,)


def test_export_to_directory_names_the_file(exported, tmp_path):
    m, _ = exported
    out = tmp_path / "dir"
    out.mkdir()
    path = runnerfleet.models.export_model(m.tag, str(out))
    assert path == str(out / f"iris_clf-{m.tag.version}.rfmodel")


def test_reimport_identical_is_a_noop_that_says_so(exported, store_home):
    m, path = exported
    before = snapshot(store_home)
    result = store.import_model(str(path))
    assert result.outcome == "unchanged"
    assert "already in the store" in result.message
    assert result.model.tag == m.tag
    assert snapshot(store_home) == before


def test_different_archive_under_same_tag_needs_force(exported, store_home, tmp_path):
    m, path = exported
    entries = members(path)
    info = json.loads({e.name: d for e, d in entries}["info.json"])
    info["labels"] = {"a": "changed"}
    changed = [(e, json.dumps(info).encode() if e.name == "info.json" else d) for e, d in entries]
    other = write_tar(tmp_path / "other.rfmodel", reseal(changed))
    before = snapshot(store_home)
    with pytest.raises(AlreadyExists, match="force"):
        runnerfleet.models.import_model(str(other))
    assert snapshot(store_home) == before
    result = store.import_model(str(other), force=True)
    assert result.outcome == "replaced"
    assert runnerfleet.models.get(m.tag).info.labels == {"a": "changed"}
    assert [x.tag for x in runnerfleet.models.list()] == [m.tag]


def _tampered(entries):
    return [(e, d + b"x" if e.name == "model.joblib" else d) for e, d in entries]


def _dropped(entries):
    return [(e, d) for e, d in entries if e.name != "custom_objects.pkl"]


def _extra(name, kind=tarfile.REGTYPE, target=""):
    def mutate(entries):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = target
        return [*entries, (info, b"evil")]

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_tampered, "sha256"),
        (_dropped, "missing"),
        (_extra("../evil.txt"), r"escapes its folder"),
        (_extra("sub/../../evil.txt"), r"escapes its folder"),
        (_extra("/tmp/evil.txt"), "absolute path"),
        (_extra("link", tarfile.SYMTYPE, "/etc/passwd"), "link"),
        (_extra("hard", tarfile.LNKTYPE, "info.json"), "link"),
        (_extra("fifo", tarfile.FIFOTYPE), "not a regular file"),
        (_extra("notes.txt"), "not in its manifest"),
    ],
    ids=[
        "tampered",
        "missing",
        "dotdot",
        "nested-dotdot",
        "absolute",
        "symlink",
        "hardlink",
        "fifo",
        "extra",
    ],
)
def test_bad_archives_refused_store_unchanged(exported, store_home, tmp_path, mutate, message):
    m, path = exported
    runnerfleet.models.delete(m.tag)
    before = snapshot(store_home)
    bad = write_tar(tmp_path / "bad.rfmodel", mutate(members(path)))
    with pytest.raises(InvalidArgument, match=message):
        runnerfleet.models.import_model(str(bad))
    assert snapshot(store_home) == before
    assert not (tmp_path.parent / "evil.txt").exists()
    assert not pathlib.Path("/tmp/evil.txt").exists()
    assert runnerfleet.models.list() == []


def test_truncated_archive_refused(exported, store_home, tmp_path):
    m, path = exported
    runnerfleet.models.delete(m.tag)
    before = snapshot(store_home)
    data = path.read_bytes()
    with tarfile.open(path) as tar:  # cut inside each member's header and inside its data
        cuts = [c for info in tar for c in (info.offset + 100, info.offset_data + info.size // 2)]
    assert len(cuts) >= 8
    for cut in cuts:
        bad = tmp_path / "cut.rfmodel"
        bad.write_bytes(data[:cut])
        with pytest.raises(InvalidArgument, match="truncated|incomplete|not a valid|no manifest"):
            runnerfleet.models.import_model(str(bad))
        assert snapshot(store_home) == before


def test_not_an_archive_and_missing_file(store_home, tmp_path):
    junk = tmp_path / "junk.rfmodel"
    junk.write_bytes(b"hello, not a tar" * 100)
    with pytest.raises(InvalidArgument, match="not a valid"):
        runnerfleet.models.import_model(str(junk))
    with pytest.raises(NotFound, match="does not exist"):
        runnerfleet.models.import_model(str(tmp_path / "missing.rfmodel"))


def test_export_unknown_model(store_home, tmp_path):
    with pytest.raises(NotFound):
        runnerfleet.models.export_model("nosuch:latest", str(tmp_path / "x.rfmodel"))
    assert list(tmp_path.iterdir()) == [store_home]


def test_export_refuses_corrupted_store(exported, tmp_path):
    m, _ = exported
    with open(m.path_of("model.joblib"), "ab") as f:
        f.write(b"rot")
    from protos.errors import RunnerFleetError

    with pytest.raises(RunnerFleetError, match="does not match its manifest|size"):
        runnerfleet.models.export_model(m.tag, str(tmp_path / "again.rfmodel"))
    assert not (tmp_path / "again.rfmodel").exists()


def test_archive_with_unknown_framework_or_no_info_refused(exported, store_home, tmp_path):
    m, path = exported
    runnerfleet.models.delete(m.tag)
    entries = members(path)
    info = json.loads({e.name: d for e, d in entries}["info.json"])
    info["module"] = "tensorflow"
    foreign = [(e, json.dumps(info).encode() if e.name == "info.json" else d) for e, d in entries]
    with pytest.raises(InvalidArgument, match="unknown model framework 'tensorflow'"):
        runnerfleet.models.import_model(str(write_tar(tmp_path / "tf.rfmodel", reseal(foreign))))
    no_info = [(e, d) for e, d in entries if e.name != "info.json"]
    manifest = json.loads({e.name: d for e, d in no_info}["manifest.json"])
    del manifest["files"]["info.json"]
    no_info = [
        (e, json.dumps(manifest).encode() if e.name == "manifest.json" else d) for e, d in no_info
    ]
    with pytest.raises(InvalidArgument, match="no info.json"):
        runnerfleet.models.import_model(str(write_tar(tmp_path / "noinfo.rfmodel", no_info)))
    assert runnerfleet.models.list() == []
