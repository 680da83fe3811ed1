"""`import runnerfleet` is light and exposes the BentoML-style names; serving parts load lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import runnerfleet


def test_exports():
    assert {"sklearn", "pytorch", "models", "Tag"} <= set(runnerfleet.__all__)
    for module in (runnerfleet.sklearn, runnerfleet.pytorch):
        assert {"save_model", "load_model", "get"} <= set(module.__all__)
    assert {"get", "list", "delete", "export_model", "import_model"} <= set(
        runnerfleet.models.__all__
    )
    assert str(runnerfleet.Tag("iris_clf", "v1")) == "iris_clf:v1"


def test_import_is_lazy_about_grpc_torch_and_serving():
    code = (
        "import sys, runnerfleet; "
        "heavy = [m for m in ('grpc', 'torch', 'sklearn', 'runnerfleet.service', "
        "'runnerfleet.io', 'runnerfleet.client') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no_such_thing"):
        runnerfleet.no_such_thing  # noqa: B018
