"""`runnerfleet models ...` through click's CliRunner (and one real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import runnerfleet
from runnerfleet.cli import cli


@pytest.fixture
def saved(store_home):
    x, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=1000).fit(x, y)
    a = runnerfleet.sklearn.save_model("iris_clf", clf, labels={"stage": "dev"})
    b = runnerfleet.sklearn.save_model("iris_clf", clf, labels={"stage": "prod"})
    return a, b


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, ["models", *args], input=input)


def test_list_table_and_json(saved):
    a, b = saved
    result = invoke("list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["TAG", "MODULE", "SIZE", "CREATED", "LABELS"]
    assert str(b.tag) in lines[1]
    assert str(a.tag) in lines[2]
    rows = json.loads(invoke("list", "-o", "json", "--label", "stage=prod").output)
    assert [r["tag"] for r in rows] == [str(b.tag)]
    assert rows[0]["module"] == "sklearn"
    assert rows[0]["size_bytes"] > 0


def test_get_json(saved):
    _, b = saved
    result = invoke("get", "iris_clf:latest", "-o", "json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["tag"] == str(b.tag)
    assert info["labels"] == {"stage": "prod"}
    assert set(info["signatures"]) == {"predict", "predict_proba"}
    assert "module:" in invoke("get", str(b.tag)).output


def test_export_import_delete(saved, tmp_path):
    a, _ = saved
    path = tmp_path / "a.rfmodel"
    result = invoke("export", str(a.tag), str(path))
    assert result.exit_code == 0, result.output
    assert path.exists(), result.output
    again = invoke("import", str(path))
    assert again.exit_code == 0
    assert "identical: nothing imported" in again.output
    refused = invoke("delete", str(a.tag), input="n\n")
    assert refused.exit_code != 0
    assert runnerfleet.models.get(a.tag)
    deleted = invoke("delete", str(a.tag), "-y")
    assert deleted.exit_code == 0
    assert str(a.tag) in deleted.output
    assert invoke("import", str(path)).exit_code == 0
    assert runnerfleet.models.get(a.tag).tag == a.tag
    confirmed = invoke("delete", "iris_clf", input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert runnerfleet.models.list() == []


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["get", "nosuch"], "not found"),
        (["get", "ba d"], "invalid model name"),
        (["delete", "-y", "nosuch:abc"], "not found"),
        (["import", "/nonexistent/x.rfmodel"], "does not exist"),
        (["list", "--label", "novalue"], "KEY=VALUE"),
    ],
)
def test_errors_exit_nonzero_with_one_line(store_home, args, reason):
    result = invoke(*args)
    assert result.exit_code != 0
    assert reason in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_real_process_error_is_one_line(store_home, tmp_path):
    junk = tmp_path / "junk.rfmodel"
    junk.write_bytes(b"not a tar at all" * 64)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from runnerfleet.cli import main; main()",
            "models",
            "import",
            str(junk),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert "not a valid" in proc.stderr
    assert "Traceback" not in proc.stderr
