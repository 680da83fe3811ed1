"""runnerfleet.io.NumpyNdarray and runnerfleet.service.Service: declaration, validation, APIs."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest

from protos.errors import InvalidArgument
from runnerfleet.io import IODescriptor, NumpyNdarray
from runnerfleet.service import Service, ServiceApi

# --- NumpyNdarray -------------------------------------------------------------------------------


def test_no_declaration_accepts_anything_as_ndarray():
    out = NumpyNdarray().validate([[1, 2], [3, 4]])
    assert isinstance(out, np.ndarray) and out.shape == (2, 2)


def test_dtype_converts_when_not_enforced():
    out = NumpyNdarray(dtype="float32").validate(np.arange(3))
    assert out.dtype == np.float32


def test_dtype_enforced_refuses_mismatch():
    # BentoML casts within a kind even when enforced; float -> int is not within a kind
    with pytest.raises(InvalidArgument, match="expected an array of dtype int64, got float64"):
        NumpyNdarray(dtype=np.int64, enforce_dtype=True).validate(np.arange(3.0))


def test_dtype_not_castable_passes_through_unenforced():
    arr = np.array(["x"], dtype=object)
    assert NumpyNdarray(dtype="float32").validate(arr) is arr


@pytest.mark.parametrize(
    ("shape", "actual"), [((-1, 4), (7, 4)), ((2, -1), (2, 0)), ((), ()), ((-1, -1), (3, 5))]
)
def test_shape_wildcards_match(shape, actual):
    arr = np.zeros(actual)
    assert NumpyNdarray(shape=shape, enforce_shape=True).validate(arr).shape == actual


@pytest.mark.parametrize(("shape", "actual"), [((-1, 4), (4, 3)), ((2,), (2, 1)), ((3,), (4,))])
def test_shape_enforced_refuses_mismatch(shape, actual):
    with pytest.raises(InvalidArgument, match="expected an array of shape"):
        NumpyNdarray(shape=shape, enforce_shape=True).validate(np.zeros(actual))


def test_shape_not_enforced_reshapes_when_sizes_allow():
    assert NumpyNdarray(shape=(-1, 4)).validate(np.zeros(8)).shape == (2, 4)
    assert NumpyNdarray(shape=(2, 3)).validate(np.zeros(6)).shape == (2, 3)
    assert NumpyNdarray(shape=(2, 3)).validate(np.zeros(5)).shape == (5,)  # passed through


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dtype": "complex64"}, "no Open Inference Protocol datatype"),
        ({"dtype": "not-a-dtype"}, "not a numpy dtype"),
        ({"shape": (-2, 3)}, "sizes >= 0 or -1"),
        ({"enforce_dtype": True}, "needs a dtype"),
        ({"enforce_shape": True}, "needs a shape"),
    ],
)
def test_bad_declarations(kwargs, match):
    with pytest.raises(InvalidArgument, match=match):
        NumpyNdarray(**kwargs)


def test_to_spec():
    assert NumpyNdarray(dtype="float32", shape=(-1, 4)).to_spec("input__0") == {
        "name": "input__0",
        "datatype": "FP32",
        "shape": [-1, 4],
    }
    assert NumpyNdarray().to_spec("x") == {"name": "x", "datatype": None, "shape": None}
    assert isinstance(NumpyNdarray(), IODescriptor)


# --- Service ------------------------------------------------------------------------------------


def _runner(name):
    return SimpleNamespace(name=name)


def test_api_registers_sync_and_async_functions():
    svc = Service("iris_classifier", runners=[_runner("iris_clf")])

    @svc.api(input=NumpyNdarray(), output=NumpyNdarray())
    def classify(x):
        return x * 2

    @svc.api(input=NumpyNdarray(dtype="float32"), output=NumpyNdarray(), name="classify-async")
    async def classify_async(x):
        return x + 1

    assert set(svc.apis) == {"classify", "classify-async"}
    api = svc.apis["classify"]
    assert isinstance(api, ServiceApi) and api.func is classify and not api.is_async
    assert svc.apis["classify-async"].is_async
    assert classify(np.ones(1)).tolist() == [2.0]  # the decorator returns the function unchanged
    assert api.call([1, 2]).tolist() == [2, 4]
    out = asyncio.run(svc.apis["classify-async"].async_call(np.arange(2)))
    assert out.dtype == np.float32 and out.tolist() == [1.0, 2.0]
    assert asyncio.run(api.async_call(np.arange(2))).tolist() == [0, 2]


def test_api_validates_output():
    svc = Service("svc")

    @svc.api(input=NumpyNdarray(), output=NumpyNdarray(dtype="int64", enforce_dtype=True))
    def bad(x):
        return x.astype(np.float32)

    with pytest.raises(InvalidArgument, match="dtype int64"):
        svc.apis["bad"].call(np.arange(3))


@pytest.mark.parametrize("name", ["iris classifier", "-iris", "x" * 64, ""])
def test_service_name_validated(name):
    with pytest.raises(InvalidArgument):
        Service(name)


def test_api_name_validated_and_unique():
    svc = Service("svc")
    with pytest.raises(InvalidArgument, match="invalid API name 'pre dict'"):
        svc.api(input=NumpyNdarray(), output=NumpyNdarray(), name="pre dict")(lambda x: x)

    @svc.api(input=NumpyNdarray(), output=NumpyNdarray())
    def predict(x):
        return x

    with pytest.raises(InvalidArgument, match="already has an API named 'predict'"):
        svc.api(input=NumpyNdarray(), output=NumpyNdarray(), name="predict")(lambda x: x)


def test_api_needs_io_descriptors():
    svc = Service("svc")
    with pytest.raises(InvalidArgument, match="input must be an IO descriptor"):
        svc.api(input=np.ndarray, output=NumpyNdarray())  # type: ignore[arg-type]


def test_duplicate_or_bad_runners_refused():
    with pytest.raises(InvalidArgument, match="listed twice"):
        Service("svc", runners=[_runner("a"), _runner("a")])
    with pytest.raises(InvalidArgument, match="not a runner"):
        Service("svc", runners=[object()])
