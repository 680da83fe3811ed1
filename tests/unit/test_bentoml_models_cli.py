"""`runnerfleet models` as `bentoml models` behaves: yaml and path output, export here, delete."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from click.testing import CliRunner

import runnerfleet
from runnerfleet.cli import cli


class Echo:
    def predict(self, x):
        return x


@pytest.fixture()
def two(store_home):
    first = runnerfleet.picklable_model.save_model("first", Echo())
    second = runnerfleet.picklable_model.save_model("second", Echo())
    return first, second


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, ["models", *args], input=input)


def test_get_yaml_by_default_json_and_path(two):
    first, _ = two
    result = invoke("get", str(first.tag))
    assert result.exit_code == 0, result.output
    info = yaml.safe_load(result.output)
    assert info["tag"] == str(first.tag) and info["module"] == "picklable_model"
    assert json.loads(invoke("get", "first", "-o", "json").output)["tag"] == str(first.tag)
    assert invoke("get", "first", "-o", "path").output.strip() == first.path


def test_list_yaml_newest_first(two):
    first, second = two
    rows = yaml.safe_load(invoke("list", "-o", "yaml").output)
    assert [r["tag"] for r in rows] == [str(second.tag), str(first.tag)]


def test_export_defaults_to_the_current_folder(two, tmp_path):
    first, _ = two
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path) as here:
        result = runner.invoke(cli, ["models", "export", str(first.tag)])
        assert result.exit_code == 0, result.output
        assert os.listdir(here) == [f"first-{first.tag.version}.rfmodel"]


def test_delete_several_and_comma_separated_with_assume_yes(two, store_home):
    first, second = two
    third = runnerfleet.picklable_model.save_model("third", Echo())
    result = invoke("delete", f"{first.tag},{second.tag}", str(third.tag), "--assume-yes")
    assert result.exit_code == 0, result.output
    assert runnerfleet.models.list() == []
