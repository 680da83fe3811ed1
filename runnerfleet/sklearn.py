"""``runnerfleet.sklearn``: save, load and get scikit-learn estimators (BentoML 1.x style)."""

from __future__ import annotations

from runnerfleet._framework_api import FrameworkApi

__all__ = ["save_model", "load_model", "get"]

_API = FrameworkApi("sklearn")
save_model = _API.save_model
load_model = _API.load_model
get = _API.get
