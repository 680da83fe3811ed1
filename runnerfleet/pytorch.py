"""``runnerfleet.pytorch``: save, load and get torch nn.Modules and TorchScript modules."""

from __future__ import annotations

from runnerfleet._framework_api import FrameworkApi

__all__ = ["save_model", "load_model", "get"]

_API = FrameworkApi("pytorch")
save_model = _API.save_model
load_model = _API.load_model
get = _API.get
