"""Signed archives and versions: ed25519 over the manifest, required on import or at load."""

from __future__ import annotations

import io
import json
import pathlib
import tarfile

import pytest
from click.testing import CliRunner
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import runnerfleet
import store
from protos.errors import ErrorCode
from runnerfleet.cli import cli
from store.signing import SignatureError


def invoke(*args: str):
    return CliRunner().invoke(cli, ["models", *args])


@pytest.fixture
def keys(tmp_path):
    """Two key pairs made by the CLI: ours (trusted) and a stranger's."""
    out = {}
    for who in ("ours", "theirs"):
        result = invoke("keygen", str(tmp_path / f"{who}.key"))
        assert result.exit_code == 0, result.output
        out[who] = (tmp_path / f"{who}.key", tmp_path / f"{who}.key.pub")
    assert (out["ours"][0].stat().st_mode & 0o777) == 0o600
    return out


@pytest.fixture
def saved(store_home):
    x, y = load_iris(return_X_y=True)
    return runnerfleet.sklearn.save_model("iris_clf", LogisticRegression(max_iter=500).fit(x, y))


def export(tag, path: pathlib.Path, key: pathlib.Path | None = None) -> pathlib.Path:
    args = ["export", str(tag), str(path)] + (["--sign", str(key)] if key else [])
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return path


def snapshot(home: pathlib.Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(home)): p.read_bytes()
        for p in sorted(home.rglob("*"))
        if p.is_file() and "locks" not in p.parts
    }


def test_signed_export_imports_with_required_signature(saved, keys, tmp_path, store_home):
    archive = export(saved.tag, tmp_path / "signed.rfmodel", keys["ours"][0])
    with tarfile.open(archive) as tar:
        assert tar.getnames()[:2] == ["manifest.json", "manifest.sig"]
    store.delete(saved.tag)
    result = invoke(
        "import", str(archive), "--require-signature", "--trusted-key", str(keys["ours"][1])
    )
    assert result.exit_code == 0, result.output
    assert "created" in result.output
    # the signature is kept with the version: a worker that requires it can load it
    policy = store.TrustPolicy(require_signature=True, trusted_keys=(str(keys["ours"][1]),))
    model = store.get(saved.tag)
    assert model.load_model(policy=policy).predict([[5.1, 3.5, 1.4, 0.2]]).tolist() == [0]
    # and it travels on in a re-export without a key
    again = export(saved.tag, tmp_path / "again.rfmodel")
    with tarfile.open(again) as tar:
        assert "manifest.sig" in tar.getnames()


@pytest.mark.parametrize("variant", ["unsigned", "foreign", "tampered"])
def test_unsigned_foreign_or_tampered_archives_refused(saved, keys, tmp_path, store_home, variant):
    trusted = str(keys["ours"][1])
    if variant == "unsigned":
        archive = export(saved.tag, tmp_path / "a.rfmodel")
        reason = "unsigned"
    elif variant == "foreign":
        archive = export(saved.tag, tmp_path / "a.rfmodel", keys["theirs"][0])
        reason = "not trusted"
    else:  # signed by us, then the manifest edited (its files resealed to match)
        signed = export(saved.tag, tmp_path / "s.rfmodel", keys["ours"][0])
        with tarfile.open(signed) as tar:
            entries = [(m, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]
        manifest = json.loads(entries[0][1])
        manifest["tampered"] = True
        entries[0] = (entries[0][0], json.dumps(manifest).encode())
        archive = tmp_path / "a.rfmodel"
        with tarfile.open(archive, "w") as tar:
            for info, data in entries:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        reason = "does not match the manifest"
    before = snapshot(store_home)
    result = invoke(
        "import", str(archive), "--force", "--require-signature", "--trusted-key", trusted
    )
    assert result.exit_code == 1
    assert reason in result.output
    assert "Traceback" not in result.output
    assert snapshot(store_home) == before  # nothing in the store lost or changed
    policy = store.TrustPolicy(require_signature=True, trusted_keys=(trusted,))
    with pytest.raises(SignatureError, match=reason) as info:
        store.import_model(str(archive), force=True, policy=policy)
    assert info.value.code is ErrorCode.FAILED_PRECONDITION


def test_require_signature_needs_a_key(saved, tmp_path):
    archive = export(saved.tag, tmp_path / "a.rfmodel")
    result = invoke("import", str(archive), "--require-signature")
    assert result.exit_code != 0
    assert "--trusted-key" in result.output


def test_stored_version_signature_checked_at_load(saved, keys):
    policy = store.TrustPolicy(require_signature=True, trusted_keys=(str(keys["ours"][1]),))
    with pytest.raises(SignatureError, match="unsigned"):
        store.get(saved.tag).load_model(policy=policy)
    result = invoke("sign", str(saved.tag), "--key", str(keys["theirs"][0]))
    assert result.exit_code == 0, result.output
    with pytest.raises(SignatureError, match="not trusted"):
        store.get(saved.tag).load_model(policy=policy)
    assert invoke("sign", str(saved.tag), "--key", str(keys["ours"][0])).exit_code == 0
    store.get(saved.tag).load_model(policy=policy)
    checked = invoke(
        "get",
        str(saved.tag),
        "-o",
        "json",
        "--require-signature",
        "--trusted-key",
        str(keys["ours"][1]),
    )
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.output)["signature"] == "ok"


def test_signed_reimport_of_identical_unsigned_version_adds_the_signature(saved, keys, tmp_path):
    archive = export(saved.tag, tmp_path / "s.rfmodel", keys["ours"][0])
    result = store.import_model(str(archive))
    assert result.outcome == "signed"
    assert store.import_model(str(archive)).outcome == "unchanged"


def test_trusted_keys_from_env(saved, keys, monkeypatch):
    monkeypatch.setenv("RUNNERFLEET_REQUIRE_SIGNATURE", "1")
    monkeypatch.setenv("RUNNERFLEET_TRUSTED_KEYS", f"{keys['theirs'][1]},{keys['ours'][1]}")
    with pytest.raises(SignatureError, match="unsigned"):
        runnerfleet.sklearn.load_model(saved.tag)
    assert invoke("sign", str(saved.tag), "--key", str(keys["ours"][0])).exit_code == 0
    runnerfleet.sklearn.load_model(saved.tag)
