"""The one settings loader: one boolean rule, one env prefix, the store root, both processes."""

from __future__ import annotations

import os

import pytest

import runnerfleet
import store
from api_gateway.settings import GatewaySettings
from protos.errors import InvalidArgument
from protos.settings_loader import env_name, parse_bool, store_root
from runner_worker.settings import load_settings
from runnerfleet.sdk.model import Model as SdkModel


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "yes", "on", " On ", True])
def test_true_spellings(raw: object) -> None:
    assert parse_bool(raw) is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "no", "off", False])
def test_false_spellings(raw: object) -> None:
    assert parse_bool(raw) is False


def test_a_non_boolean_is_refused_not_guessed() -> None:
    with pytest.raises(InvalidArgument, match="boolean"):
        parse_bool("maybe")
    with pytest.raises(InvalidArgument, match="boolean"):
        load_settings({}, {"RUNNERFLEET_WARMUP": "maybe"})


def test_worker_reads_booleans_by_the_shared_rule() -> None:
    assert load_settings({}, {"RUNNERFLEET_WARMUP": "off"}).warmup is False
    assert load_settings({}, {"RUNNERFLEET_WARMUP": "yes"}).warmup is True
    assert load_settings({}, {"RUNNERFLEET_WARMUP": ""}).warmup is True  # empty = unset


def test_env_names_share_one_prefix_and_store_root_keeps_runnerfleet_home() -> None:
    assert env_name("max_batch_size") == "RUNNERFLEET_MAX_BATCH_SIZE"
    assert env_name("store_root") == "RUNNERFLEET_HOME"
    assert store_root({"RUNNERFLEET_HOME": "/srv/models"}) == "/srv/models"
    assert store_root({}) == os.path.join(os.path.expanduser("~"), "runnerfleet")


def test_worker_store_root_and_timeouts_are_settings() -> None:
    s = load_settings({}, {"RUNNERFLEET_HOME": "/srv/m", "RUNNERFLEET_STOP_GRACE_S": "2.5"})
    assert s.store_root == "/srv/m"
    assert s.stop_grace_s == 2.5
    assert load_settings({}, {}).store_root == store_root({})


def test_gateway_timeouts_are_settings_with_units() -> None:
    env = {"RUNNERFLEET_STATISTICS_TIMEOUT_S": "1.5", "RUNNERFLEET_REPOSITORY_TIMEOUT_S": "60"}
    s = GatewaySettings.load({"workers": ["a:1", " b:2 "]}, env)
    assert s.statistics_timeout_s == 1.5
    assert s.repository_timeout_s == 60.0
    assert s.describe_timeout_s == 5.0
    assert s.workers == ("a:1", "b:2")


def test_a_malformed_number_names_the_setting() -> None:
    with pytest.raises(InvalidArgument, match="max_batch_size"):
        load_settings({}, {"RUNNERFLEET_MAX_BATCH_SIZE": "eight"})


def test_the_store_follows_runnerfleet_home(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNERFLEET_HOME", str(tmp_path))
    assert store.default_root() == str(tmp_path)


def test_sdk_models_have_to_runner_and_store_models_do_not(store_home) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression().fit(np.eye(2), [0, 1])
    saved = runnerfleet.sklearn.save_model("tiny", clf, signatures={"predict": {}})
    got = runnerfleet.models.get("tiny")
    assert isinstance(saved, SdkModel)
    assert isinstance(got, SdkModel)
    assert isinstance(got, store.Model)
    assert got == store.get("tiny")
    assert not hasattr(store.get("tiny"), "to_runner")
    runner = got.to_runner()
    runner.init_local()
    assert runner.predict.run(np.eye(2)).tolist() == [0, 1]
