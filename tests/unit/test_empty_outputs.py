"""0-row requests to batchable methods are answered from the output spec, not by the model."""

from __future__ import annotations

import numpy as np
import pytest

from protos.errors import InvalidArgument
from runner_worker.inference import empty_outputs
from runner_worker.runner import MethodInfo
from store.model import TensorSpec


def info(batchable: bool = True, outputs: tuple | None = None) -> MethodInfo:
    spec = (TensorSpec("in", "float64", (-1, 4)),)
    return MethodInfo("predict", batchable, (0, 0), spec, outputs)


def test_zero_rows_answer_zero_rows_of_each_output() -> None:
    outs = (TensorSpec("label", "int64", (-1,)), TensorSpec("proba", "float64", (-1, 3)))
    got = empty_outputs(info(outputs=outs), [np.zeros((0, 4))])
    assert got is not None
    assert [(a.shape, a.dtype) for a in got] == [((0,), np.int64), ((0, 3), np.float64)]


def test_requests_with_rows_or_unbatchable_methods_run_the_model() -> None:
    outs = (TensorSpec("label", "int64", (-1,)),)
    assert empty_outputs(info(outputs=outs), [np.zeros((2, 4))]) is None
    assert empty_outputs(info(batchable=False, outputs=outs), [np.zeros((0, 4))]) is None


def test_zero_rows_without_an_output_spec_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="0 rows"):
        empty_outputs(info(outputs=None), [np.zeros((0, 4))])
