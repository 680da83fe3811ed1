"""Fixtures for the compat suite (own pytest process: imports tritonclient, never protos)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tests.support import procs
from tests.support.gateway_procs import start_gateway

# Runs in a child process: saves demo models and the in-process predictions to compare with.
_SEED_SCRIPT = r"""
import json, sys
import numpy as np
from runnerfleet import demo_models as d
import store
out = sys.argv[1]
tags = {"iris": str(d.save_iris()), "digits": str(d.save_digits_torch())}
rng = np.random.default_rng(0)
x_iris = d.iris_data()[0][rng.choice(150, 7, replace=False)]
x_digits = d.digits_data()[0][:5].astype(np.float32)
iris = store.get(tags["iris"]).load_runnable()
digits = store.get(tags["digits"]).load_runnable()
np.save(out + "/x_iris.npy", x_iris)
np.save(out + "/y_iris_predict.npy", np.asarray(iris.methods["predict"](x_iris)))
np.save(out + "/y_iris_proba.npy", np.asarray(iris.methods["predict_proba"](x_iris)))
np.save(out + "/x_digits.npy", x_digits)
np.save(out + "/y_digits.npy", np.asarray(digits.methods[digits.default_method](x_digits)))
json.dump(tags, open(out + "/tags.json", "w"))
"""


@pytest.fixture(scope="session")
def compat_store(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A store with iris_clf and digits_mlp plus expected outputs (.npy), made in a subprocess."""
    home = tmp_path_factory.mktemp("compat-store")
    env = dict(os.environ, RUNNERFLEET_HOME=str(home))
    subprocess.run(
        [sys.executable, "-c", _SEED_SCRIPT, str(home)],
        check=True,
        env=env,
        cwd=str(procs.REPO_ROOT),
        timeout=120,
    )
    return home


@pytest.fixture(scope="session")
def expected(compat_store: pathlib.Path) -> dict[str, np.ndarray]:
    """Inputs and in-process outputs saved by the seeding subprocess."""
    return {p.stem: np.load(p) for p in compat_store.glob("*.npy")}


@pytest.fixture(scope="session")
def tags(compat_store: pathlib.Path) -> dict[str, str]:
    return json.loads((compat_store / "tags.json").read_text())


@pytest.fixture(scope="session")
def worker(compat_store: pathlib.Path, tags: dict[str, str]):
    """One worker serving iris_clf and digits_mlp for the whole compat session."""
    handle = procs.start_worker([tags["iris"], tags["digits"]], compat_store)
    try:
        procs.wait_serving(handle.address, 60)
        yield handle
    finally:
        procs.stop(handle)


@pytest.fixture(scope="module")
def gateway(worker):
    """A gateway in front of the session's worker, one per test module that asks for it."""
    handle = start_gateway([worker.address])
    try:
        yield handle
    finally:
        procs.stop(handle)
