"""Integrity at load: every file is hashed against the manifest before anything is unpickled."""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import joblib
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

import runnerfleet
import store
from protos.errors import ErrorCode
from runnerfleet.cli import cli
from store.integrity import IntegrityError

X, Y = load_iris(return_X_y=True)
ROWS = X[[0, 100, 60]]


@pytest.fixture(scope="module")
def clf():
    return LogisticRegression(max_iter=1000).fit(X, Y)


@pytest.fixture
def saved(store_home, clf):
    return runnerfleet.sklearn.save_model("iris_clf", clf, custom_objects={"k": 1})


def swap_model_file(model: store.Model) -> None:
    """Replace model.joblib with another valid estimator (always predicts class 2)."""
    other = DummyClassifier(strategy="constant", constant=2).fit(X, Y)
    joblib.dump(other, model.path_of("model.joblib"))


def tree_digest(home: pathlib.Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(home)): p.read_bytes()
        for p in sorted(home.rglob("*"))
        if p.is_file() and "locks" not in p.parts
    }


def test_intact_model_loads_and_predicts(saved):
    model = runnerfleet.sklearn.load_model(saved.tag)
    assert model.predict(ROWS).tolist() == [0, 2, 1]


def test_swapped_model_file_is_refused_naming_the_file(saved):
    swap_model_file(saved)
    with pytest.raises(IntegrityError, match="model.joblib") as info:
        runnerfleet.sklearn.load_model(saved.tag)
    assert info.value.code is ErrorCode.FAILED_PRECONDITION
    with pytest.raises(IntegrityError, match="model.joblib"):
        store.get(saved.tag).load_runnable()
    with pytest.raises(IntegrityError, match="model.joblib"):
        store.get(saved.tag).custom_objects  # noqa: B018 - the access unpickles


def test_corrupted_bytes_are_an_integrity_error_not_a_pickle_traceback(saved):
    with open(saved.path_of("model.joblib"), "r+b") as f:
        f.seek(40)
        f.write(b"\xff" * 16)
    with pytest.raises(IntegrityError, match="model.joblib"):
        runnerfleet.sklearn.load_model(saved.tag)


def test_tampered_custom_objects_refused(saved):
    with open(saved.path_of("custom_objects.pkl"), "ab") as f:
        f.write(b"x")
    with pytest.raises(IntegrityError, match="custom_objects.pkl"):
        store.get(saved.tag).custom_objects  # noqa: B018


def test_extra_or_missing_file_refused(saved):
    extra = saved.path_of("model.torchscript")
    shutil.copy(saved.path_of("model.joblib"), extra)
    with pytest.raises(IntegrityError, match="model.torchscript is not in the manifest"):
        runnerfleet.sklearn.load_model(saved.tag)
    os.unlink(extra)
    os.unlink(saved.path_of("custom_objects.pkl"))
    with pytest.raises(IntegrityError, match="custom_objects.pkl .*missing"):
        runnerfleet.sklearn.load_model(saved.tag)


def test_missing_or_malformed_manifest_is_an_integrity_error(saved):
    manifest = saved.path_of("manifest.json")
    with open(manifest, "w") as f:
        f.write("{not json")
    with pytest.raises(IntegrityError, match="malformed manifest.json"):
        runnerfleet.sklearn.load_model(saved.tag)
    os.unlink(manifest)
    with pytest.raises(IntegrityError, match="no manifest.json"):
        runnerfleet.sklearn.load_model(saved.tag)


def test_skippable_only_by_an_explicit_setting(saved, monkeypatch):
    swap_model_file(saved)
    skip = store.TrustPolicy(verify_integrity=False)
    assert store.get(saved.tag).load_model(policy=skip).predict(ROWS).tolist() == [2, 2, 2]
    monkeypatch.setenv("RUNNERFLEET_VERIFY_INTEGRITY", "0")
    assert runnerfleet.sklearn.load_model(saved.tag).predict(ROWS).tolist() == [2, 2, 2]
    monkeypatch.setenv("RUNNERFLEET_VERIFY_INTEGRITY", "maybe")
    with pytest.raises(ValueError, match="RUNNERFLEET_VERIFY_INTEGRITY"):
        runnerfleet.sklearn.load_model(saved.tag)


def test_cli_get_verify(saved, store_home):
    ok = CliRunner().invoke(cli, ["models", "get", str(saved.tag), "--verify", "-o", "json"])
    assert ok.exit_code == 0, ok.output
    shown = json.loads(ok.output)
    assert shown["verified"] == "ok"
    assert len(shown["manifest_sha256"]) == 64
    swap_model_file(saved)
    before = tree_digest(store_home)
    bad = CliRunner().invoke(cli, ["models", "get", str(saved.tag), "--verify"])
    assert bad.exit_code == 1
    assert "model.joblib" in bad.output
    assert "Traceback" not in bad.output
    assert tree_digest(store_home) == before  # a refused check changes nothing


def test_verification_streams_in_bounded_memory(store_home):
    """A file much bigger than one chunk verifies without reading it whole (tracemalloc)."""
    import tracemalloc

    from store.integrity import verify_files
    from store.manifest import CHUNK_BYTES

    model = runnerfleet.sklearn.save_model("big", DummyClassifier().fit(X, Y))
    # Build a version folder by hand: a 48 MiB payload listed in a fresh manifest.
    folder = store_home / "scratch"
    shutil.copytree(model.path, folder)
    payload = folder / "payload.bin"
    with open(payload, "wb") as f:
        for _ in range(48):
            f.write(np.random.default_rng(0).bytes(1 << 20))
    from store.manifest import build_manifest, write_manifest

    write_manifest(str(folder), build_manifest(str(folder), str(model.tag)))
    tracemalloc.start()
    verify_files(str(folder), "scratch")
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 * CHUNK_BYTES, f"peak {peak} bytes while hashing 48 MiB"
