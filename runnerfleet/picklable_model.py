"""``runnerfleet.picklable_model``: any Python object, pickled by value with cloudpickle."""

from __future__ import annotations

from runnerfleet._framework_api import FrameworkApi

__all__ = ["save_model", "load_model", "get"]

_API = FrameworkApi("picklable_model")
save_model = _API.save_model
load_model = _API.load_model
get = _API.get
