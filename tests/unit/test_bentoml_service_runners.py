"""`runnerfleet worker --service module:svc [--runners a,b]`: which runners a worker hosts, how."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from protos.errors import InvalidArgument
from runner_worker.service_runners import CustomRunnerModel, service_runners
from runner_worker.settings import load_settings
from runnerfleet.cli import cli

SPEC = "tests.integration.bentoml_examples.custom_runner:svc"


def test_custom_runner_hosted_under_its_name_with_its_options() -> None:
    (hosted,) = service_runners(SPEC)
    assert hosted.name == "polarity_runner"
    assert hosted.source.info.name == "polarity_runner" and hosted.source.info.version == "1"
    assert hosted.source.info.signatures["is_positive"].batchable
    assert not hosted.source.info.signatures["stats"].batchable
    assert hosted.options["is_positive"].max_batch_size == 8
    assert hosted.options["stats"].max_batch_size == 16
    assert hosted.options["is_positive"].max_latency_ms == 2000.0
    runnable = hosted.source.load_runnable("cpu")
    out = runnable.methods["is_positive"](np.array([[0.9, 0.9], [0.1, 0.1]], np.float32))
    np.testing.assert_array_equal(out, [1, 0])


def test_only_named_runners_and_unknown_names_refused() -> None:
    assert [h.name for h in service_runners(SPEC, ("polarity_runner",))] == ["polarity_runner"]
    with pytest.raises(InvalidArgument, match="has runners"):
        service_runners(SPEC, ("nope",))
    with pytest.raises(InvalidArgument, match="module:attr"):
        service_runners("no-colon")


def test_tensors_a_custom_runnable_answers_go_back_as_numpy() -> None:
    import runnerfleet

    class TorchRunnable(runnerfleet.Runnable):
        @runnerfleet.Runnable.method(batchable=True)
        def double(self, x):
            return torch.as_tensor(x) * 2, torch.as_tensor(x) + 1

    runner = runnerfleet.Runner(TorchRunnable, name="torchy")
    runnable = CustomRunnerModel(runner).load_runnable()
    doubled, plus = runnable.methods["double"](np.ones(3, np.float32))
    assert isinstance(doubled, np.ndarray) and isinstance(plus, np.ndarray)
    np.testing.assert_array_equal(doubled, [2, 2, 2])


def test_worker_flags() -> None:
    settings = load_settings({"service": SPEC, "runners": "a,b"}, environ={})
    assert settings.service == SPEC and settings.runners == ("a", "b") and settings.models == ()
    result = CliRunner().invoke(cli, ["worker", "--models", "m", "--runners", "a"])
    assert result.exit_code != 0 and "--runners needs --service" in result.output
    result = CliRunner().invoke(cli, ["worker"])
    assert result.exit_code != 0 and "--models or --service" in result.output
