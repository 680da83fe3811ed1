"""scikit-learn adapter: any estimator, pickled by value with cloudpickle.

cloudpickle (not joblib's pickler, which writes classes by reference) lets an estimator class
or a FunctionTransformer's function defined in ``__main__`` load in any worker. The file keeps
its name, ``model.joblib``: ``joblib.load`` reads a plain pickle stream, so versions saved with
``joblib.dump`` before this and versions saved now load the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from protos.errors import InvalidArgument

if TYPE_CHECKING:
    from store.model import Model

__all__ = [
    "FRAMEWORK",
    "check",
    "save",
    "load",
    "default_signatures",
    "has_method",
    "make_method",
    "framework_version",
]

FRAMEWORK = "sklearn"
_FILE = "model.joblib"


def framework_version() -> str:
    from importlib.metadata import version

    return version("scikit-learn")  # without importing sklearn (slow) for non-sklearn estimators


def check(obj: Any) -> None:
    """Refuse objects that are clearly not estimators (nothing callable to serve)."""
    if obj is None or isinstance(obj, type):
        raise InvalidArgument(
            f"runnerfleet.sklearn.save_model expects an estimator instance, got {obj!r}"
        )


def has_method(obj: Any, name: str) -> bool:
    try:
        return callable(getattr(obj, name))
    except AttributeError:  # e.g. predict_proba hidden by sklearn's available_if
        return False


def default_signatures(obj: Any) -> dict[str, dict[str, Any]]:
    """``predict``, plus ``predict_proba`` when the estimator has it."""
    names = [m for m in ("predict", "predict_proba") if has_method(obj, m)]
    if not names:
        raise InvalidArgument(
            f"estimator of type {type(obj).__name__} has no predict method; pass signatures="
        )
    return {name: {"batchable": False} for name in names}


def save(obj: Any, directory: str) -> None:
    from store.by_value import dumps

    payload = dumps(obj, f"estimator of type {type(obj).__qualname__}")
    with open(os.path.join(directory, _FILE), "wb") as f:
        f.write(payload)


def load(model: Model, device: str = "cpu") -> Any:
    """The estimator (sklearn runs on the CPU whatever ``device`` says)."""
    import joblib

    return joblib.load(model.path_of(_FILE))


def make_method(obj: Any, name: str, device: str = "cpu") -> Callable[..., Any]:
    return getattr(obj, name)  # type: ignore[no-any-return]
