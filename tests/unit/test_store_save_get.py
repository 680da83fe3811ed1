"""The BentoML 1.x model API with `runnerfleet` in place of `bentoml`: save, get, load, list."""

from __future__ import annotations

import datetime as dt
import os
import platform

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

import runnerfleet
import store
from protos.errors import InvalidArgument, NotFound


@pytest.fixture(scope="module")
def iris():
    x, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=1000).fit(x, y), x, y


def test_save_with_labels_metadata_custom_objects(store_home, iris):
    clf, x, _ = iris
    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
    saved = runnerfleet.sklearn.save_model(
        "iris_clf",
        clf,
        labels={"owner": "ml-team", "stage": "dev"},
        metadata={
            "acc": np.float32(0.5),
            "n": np.int64(3),
            "arr": np.arange(3),
            "when": when,
            "nested": {"day": dt.date(2024, 1, 2), "xs": (1, 2.5)},
        },
        custom_objects={"tokenizer": {"vocab": ["a", "b"]}},
        signatures={"predict": {"batchable": True, "batch_dim": 0}},
    )
    m = runnerfleet.models.get("iris_clf:latest")
    assert m.tag == saved.tag
    assert m.tag.name == "iris_clf"
    # the version is a link to its content folder; Model.path is the folder it resolved to
    assert os.path.samefile(m.path, store_home / "models" / "iris_clf" / m.tag.version)
    assert m.custom_objects == {"tokenizer": {"vocab": ["a", "b"]}}
    assert m.info.labels == {"owner": "ml-team", "stage": "dev"}
    assert m.info.metadata == {
        "acc": 0.5,
        "n": 3,
        "arr": [0, 1, 2],
        "when": when.isoformat(),
        "nested": {"day": "2024-01-02", "xs": [1, 2.5]},
    }
    assert m.info.module == "sklearn"
    assert m.info.context["framework"] == "sklearn"
    assert m.info.context["python_version"] == platform.python_version()
    assert m.info.context["framework_version"]
    assert m.info.context["runnerfleet_version"]
    loaded = runnerfleet.sklearn.load_model("iris_clf:latest")
    np.testing.assert_array_equal(loaded.predict(x), clf.predict(x))


def test_default_sklearn_signatures(store_home, iris):
    clf, x, y = iris
    m = runnerfleet.sklearn.save_model("iris_clf", clf)
    assert set(m.info.signatures) == {"predict", "predict_proba"}
    assert not m.info.signatures["predict"].batchable
    svc = SVC().fit(x, y)  # no predict_proba unless probability=True
    assert set(runnerfleet.sklearn.save_model("svc", svc).info.signatures) == {"predict"}


def test_unsupported_metadata_names_the_key(store_home, iris):
    with pytest.raises(InvalidArgument, match=r"metadata\['bad'\]\['inner'\].*object"):
        runnerfleet.sklearn.save_model("iris_clf", iris[0], metadata={"bad": {"inner": object()}})
    with pytest.raises(InvalidArgument, match="label key 1"):
        runnerfleet.sklearn.save_model("iris_clf", iris[0], labels={1: "v"})
    assert runnerfleet.models.list() == []


def test_signature_naming_missing_method_fails_at_save(store_home, iris):
    with pytest.raises(InvalidArgument, match="'transform'.*LogisticRegression"):
        runnerfleet.sklearn.save_model("iris_clf", iris[0], signatures={"transform": {}})
    with pytest.raises(InvalidArgument, match="'embed'.*Linear"):
        runnerfleet.pytorch.save_model("lin", torch.nn.Linear(2, 2), signatures={"embed": {}})
    assert runnerfleet.models.list() == []


@pytest.mark.parametrize("bad", [{"batch_dim": "0"}, {"batch_dim": (0, 1, 2)}, {"nope": 1}])
def test_bad_signature_options(store_home, iris, bad):
    with pytest.raises(InvalidArgument, match="predict"):
        runnerfleet.sklearn.save_model("iris_clf", iris[0], signatures={"predict": bad})


@pytest.mark.parametrize("tag", ["iris_", "-a", "a:b:c", "a:", "", "x" * 64, "a b", "a/b"])
def test_bad_tags_are_one_clear_error(store_home, tag):
    with pytest.raises(InvalidArgument, match="model (name|version|tag)"):
        runnerfleet.models.get(tag)


def test_unknown_model_not_found(store_home, iris):
    with pytest.raises(NotFound, match="nosuch"):
        runnerfleet.models.get("nosuch:latest")
    m = runnerfleet.sklearn.save_model("iris_clf", iris[0])
    with pytest.raises(NotFound, match="iris_clf:zzzz"):
        runnerfleet.models.get("iris_clf:zzzz")
    with pytest.raises(NotFound):
        runnerfleet.models.delete("other")
    with pytest.raises(NotFound, match="pytorch"):  # as BentoML: another framework's model
        runnerfleet.pytorch.get(str(m.tag))


def test_sample_input_records_specs(store_home, iris):
    clf, x, _ = iris
    m = runnerfleet.sklearn.save_model(
        "iris_clf",
        clf,
        signatures={"predict": {"batchable": True}, "predict_proba": {"output_names": ["probs"]}},
        sample_input=x[:5],
    )
    pred = store.get(m.tag).info.signatures["predict"]
    assert pred.input_spec == [store.TensorSpec("input__0", "float64", (-1, 4))]
    assert pred.output_spec == [store.TensorSpec("output__0", "int64", (-1,))]
    proba = m.info.signatures["predict_proba"]  # not batchable: concrete batch size
    assert proba.input_spec[0].shape == (5, 4)
    assert proba.output_spec == [store.TensorSpec("probs", "float64", (5, 3))]


def test_sample_input_that_fails_is_refused(store_home, iris):
    with pytest.raises(InvalidArgument, match="'predict' on sample_input"):
        runnerfleet.sklearn.save_model("iris_clf", iris[0], sample_input=np.zeros((2, 7)))


def test_list_filters_and_versions_sort_by_creation(store_home, iris):
    clf = iris[0]
    a = runnerfleet.sklearn.save_model("iris_clf", clf, labels={"stage": "dev"})
    b = runnerfleet.sklearn.save_model("iris_clf", clf, labels={"stage": "prod"})
    c = runnerfleet.sklearn.save_model("other", clf, labels={"stage": "prod"})
    assert [m.tag for m in runnerfleet.models.list()] == [a.tag, b.tag, c.tag]
    assert [m.tag for m in runnerfleet.models.list("iris_clf")] == [a.tag, b.tag]
    assert [m.tag for m in runnerfleet.models.list(labels={"stage": "prod"})] == [b.tag, c.tag]
    assert runnerfleet.models.list("iris_clf", labels={"stage": "qa"}) == []
    assert runnerfleet.models.get("iris_clf").tag == b.tag  # no version = latest
    assert runnerfleet.models.get(f"iris_clf:{a.tag.version[:10]}").tag == a.tag  # prefix


def test_ambiguous_prefix(store_home, iris, monkeypatch):
    versions = iter(["abc1aaaaaaaaaaaa", "abc2aaaaaaaaaaaa"])
    monkeypatch.setattr("store.saving.new_version", lambda: next(versions))
    runnerfleet.sklearn.save_model("iris_clf", iris[0])
    runnerfleet.sklearn.save_model("iris_clf", iris[0])
    with pytest.raises(InvalidArgument, match="ambiguous"):
        runnerfleet.models.get("iris_clf:abc")
    assert runnerfleet.models.get("iris_clf:abc2").tag.version == "abc2aaaaaaaaaaaa"


def test_delete_version_moves_latest_back_and_delete_all(store_home, iris):
    clf = iris[0]
    a = runnerfleet.sklearn.save_model("iris_clf", clf)
    b = runnerfleet.sklearn.save_model("iris_clf", clf)
    runnerfleet.models.delete("iris_clf:latest")
    assert runnerfleet.models.get("iris_clf:latest").tag == a.tag
    assert (store_home / "models" / "iris_clf" / "latest").read_text() == a.tag.version
    with pytest.raises(NotFound):
        runnerfleet.models.get(b.tag)
    runnerfleet.sklearn.save_model("iris_clf", clf)
    runnerfleet.models.delete("iris_clf")  # name only: every version
    assert runnerfleet.models.list("iris_clf") == []
    with pytest.raises(NotFound):
        runnerfleet.models.get("iris_clf")


class TwoHeads(torch.nn.Module):
    def forward(self, x):
        return x * 2, x.sum(dim=1)

    def embed(self, x):
        return x + 1


def test_pytorch_runnable_numpy_in_numpy_out(store_home):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    m = runnerfleet.pytorch.save_model(
        "heads",
        TwoHeads(),
        signatures={"__call__": {"batchable": True}, "embed": {"batchable": True}},
        sample_input=x,
    )
    sig = m.info.signatures["__call__"]
    assert [s.shape for s in sig.output_spec] == [(-1, 3), (-1,)]
    assert [s.name for s in sig.output_spec] == ["output__0", "output__1"]
    runnable = store.get(m.tag).load_runnable("cpu")
    assert runnable.default_method == "__call__"
    doubled, sums = runnable.methods["__call__"](x)
    assert isinstance(doubled, np.ndarray)
    assert isinstance(sums, np.ndarray)
    np.testing.assert_array_equal(doubled, x * 2)
    np.testing.assert_array_equal(runnable.methods["embed"](x), x + 1)
    read_only = np.frombuffer(x.tobytes(), dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(runnable.methods["embed"](read_only), x + 1)
    big_endian = x.astype(">f4")
    np.testing.assert_array_equal(runnable.methods["embed"](big_endian), x + 1)


def test_pytorch_loads_with_map_location_and_torchscript(store_home):
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 2)
    x = np.ones((3, 4), dtype=np.float32)
    expected = lin(torch.from_numpy(x)).detach().numpy()
    m = runnerfleet.pytorch.save_model("lin", lin, sample_input=x)
    loaded = runnerfleet.pytorch.load_model(m.tag, device="cpu")
    assert not loaded.training
    np.testing.assert_allclose(loaded(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-6)
    with pytest.warns(DeprecationWarning, match=r"`torch\.jit\.script` is deprecated"):
        scripted = torch.jit.script(lin)
    ms = runnerfleet.pytorch.save_model("lin_ts", scripted, sample_input=x)
    out = runnerfleet.models.get(ms.tag).to_runner()
    out.init_local()
    np.testing.assert_allclose(out.run(x), expected, rtol=1e-6)
    assert ms.info.signatures["__call__"].output_spec[0].shape == (3, 2)


def test_pytorch_refuses_non_module(store_home):
    with pytest.raises(InvalidArgument, match="nn.Module"):
        runnerfleet.pytorch.save_model("lin", object())


def test_cuda_device_without_cuda_is_clear(store_home):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    m = runnerfleet.pytorch.save_model("lin", torch.nn.Linear(2, 2))
    from protos.errors import FailedPrecondition

    with pytest.raises(FailedPrecondition, match="CUDA is not available"):
        m.load_runnable("cuda:0")
