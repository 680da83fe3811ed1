"""Import limits: sparse members, odd member types, size bombs, byte cap, free space.

Every hostile archive is built for real in the test; each must be refused from its header or
while streaming, with nothing written outside staging, nothing left in tmp/, and the store
(which already holds a model) unchanged.
"""

from __future__ import annotations

import io
import os
import pathlib
import tarfile

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import runnerfleet
import store
from protos.errors import InvalidArgument, ResourceExhausted

GIB = 1 << 30


@pytest.fixture
def stocked(store_home, tmp_path):
    """A store holding iris_clf, and an honest archive of it (not in the store's folder)."""
    x, y = load_iris(return_X_y=True)
    model = runnerfleet.sklearn.save_model("iris_clf", LogisticRegression(max_iter=500).fit(x, y))
    archive = tmp_path / "archives" / "iris.rfmodel"
    archive.parent.mkdir()
    runnerfleet.models.export_model(model.tag, str(archive))
    return model, archive


def tree(root: pathlib.Path, skip: pathlib.Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``root`` (but ``skip``'s folder and locks) with size and head bytes."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and skip not in p.parents and "locks" not in p.parts:
            out[str(p.relative_to(root))] = (p.stat().st_size, p.read_bytes()[:4096])
    return out


def du_bytes(root: pathlib.Path) -> int:
    """Bytes really allocated on disk under ``root`` (sparse files count what they use)."""
    return sum(p.stat().st_blocks * 512 for p in root.rglob("*") if p.is_file())


def members_of(archive: pathlib.Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(archive) as tar:
        return [(m, tar.extractfile(m).read()) for m in tar if m.isfile()]  # type: ignore[union-attr]


def write(path: pathlib.Path, entries: list[tuple[tarfile.TarInfo, bytes]]) -> pathlib.Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data))
    return path


def pax_sparse_member(name: str, real_size: int) -> tuple[tarfile.TarInfo, bytes]:
    """A PAX 1.0 sparse member: a few bytes in the archive that read back as ``real_size``."""
    sparse_map = f"1\n{real_size - 512}\n512\n".encode()
    data = sparse_map + b"\0" * (512 - len(sparse_map)) + b"\0" * 512
    info = tarfile.TarInfo(f"GNUSparseFile.0/{name}")
    info.size = len(data)
    info.pax_headers = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": name,
        "GNU.sparse.realsize": str(real_size),
    }
    return info, data


def assert_refused_cleanly(home: pathlib.Path, root: pathlib.Path, archive, before, **kw):
    with pytest.raises((InvalidArgument, ResourceExhausted)) as info:
        store.import_model(str(archive), force=True, **kw)
    assert tree(root, archive.parent) == before, "a refused import changed something"
    tmp = home / "tmp"
    leftovers = [e for e in os.listdir(tmp) if not e.endswith(".lock")] if tmp.exists() else []
    assert leftovers == []
    return str(info.value)


def test_pax_sparse_member_declaring_1_gib_refused_before_writing(stocked, store_home, tmp_path):
    model, honest = stocked
    entries = members_of(honest)
    # the sparse member replaces model.joblib; the manifest is the honest one
    entries = [e for e in entries if e[0].name != "model.joblib"]
    archive = write(
        tmp_path / "archives" / "sparse.rfmodel", [*entries, pax_sparse_member("model.joblib", GIB)]
    )
    assert archive.stat().st_size < 64 * 1024
    with tarfile.open(archive) as tar:  # the fixture really is what it claims
        sparse = [m for m in tar if m.name == "model.joblib"]
        assert sparse
        assert sparse[0].issparse()
        assert sparse[0].size == GIB
    before = tree(tmp_path, archive.parent)
    used_before = du_bytes(store_home)
    message = assert_refused_cleanly(store_home, tmp_path, archive, before)
    assert "sparse" in message
    assert "model.joblib" in message
    assert du_bytes(store_home) - used_before < 1 << 20
    assert [m.tag for m in store.list()] == [model.tag]


@pytest.mark.parametrize(
    "kind",
    [tarfile.CONTTYPE, tarfile.GNUTYPE_SPARSE, tarfile.FIFOTYPE, tarfile.CHRTYPE],
    ids=["contiguous", "gnu-sparse", "fifo", "chardev"],
)
def test_member_types_other_than_file_and_dir_refused(stocked, store_home, tmp_path, kind):
    _model, honest = stocked
    odd = tarfile.TarInfo("model.joblib")
    odd.type = kind
    entries = [e for e in members_of(honest) if e[0].name != "model.joblib"]
    archive = tmp_path / "archives" / "odd.rfmodel"
    with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data))
        tar.addfile(odd, io.BytesIO(b""))
    before = tree(tmp_path, archive.parent)
    message = assert_refused_cleanly(store_home, tmp_path, archive, before)
    assert "model.joblib" in message


def test_size_bomb_header_refused_before_writing(stocked, store_home, tmp_path):
    """A member header declaring 1 GiB in a 1 MiB archive: refused from the header."""
    _model, honest = stocked
    archive = tmp_path / "archives" / "bomb.rfmodel"
    with open(archive, "wb") as f:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for info, data in members_of(honest):
                if info.name != "model.joblib":
                    tar.addfile(info, io.BytesIO(data))
            head = f.tell()
        f.seek(head)  # drop tarfile's end-of-archive blocks, then a lying header
        bomb = tarfile.TarInfo("model.joblib")
        bomb.size = GIB
        f.write(bomb.tobuf(format=tarfile.PAX_FORMAT))
        f.write(b"\0" * (1 << 20))
    before = tree(tmp_path, archive.parent)
    message = assert_refused_cleanly(store_home, tmp_path, archive, before)
    assert "beyond its limit" in message
    assert "model.joblib" in message


def test_byte_cap_checked_while_streaming(stocked, store_home, tmp_path):
    """An explicit small cap refuses an honest archive partway, leaving nothing behind."""
    _model, honest = stocked
    before = tree(tmp_path, honest.parent)
    cap = store.TrustPolicy(max_extract_bytes=1024)
    message = assert_refused_cleanly(store_home, tmp_path, honest, before, policy=cap)
    assert "1024 bytes" in message
    ratio = store.TrustPolicy(max_extract_ratio=0.01)
    assert_refused_cleanly(store_home, tmp_path, honest, before, policy=ratio)


def test_default_cap_admits_honest_archives(stocked, store_home):
    model, honest = stocked
    store.delete(model.tag)
    assert store.import_model(str(honest)).outcome == "created"


def test_free_space_checked_before_extracting(stocked, store_home, tmp_path):
    _model, honest = stocked
    before = tree(tmp_path, honest.parent)
    greedy = store.TrustPolicy(min_free_bytes=1 << 62)
    message = assert_refused_cleanly(store_home, tmp_path, honest, before, policy=greedy)
    assert "free space" in message


def test_limit_settings_from_env(monkeypatch):
    monkeypatch.setenv("RUNNERFLEET_MAX_EXTRACT_RATIO", "2.5")
    monkeypatch.setenv("RUNNERFLEET_MIN_FREE_BYTES", "0")
    policy = store.policy_from_env()
    assert policy.extract_cap_bytes(1000) == 2500
    assert policy.min_free_bytes == 0
    monkeypatch.setenv("RUNNERFLEET_MAX_EXTRACT_BYTES", "77")
    assert store.policy_from_env().extract_cap_bytes(1000) == 77
    monkeypatch.setenv("RUNNERFLEET_MAX_EXTRACT_RATIO", "-1")
    with pytest.raises(InvalidArgument, match="max_extract_ratio"):
        store.policy_from_env()
