"""``runnerfleet.torchscript``: save, load and get TorchScript modules (``torch.jit``)."""

from __future__ import annotations

from typing import Any

from protos.errors import InvalidArgument
from runnerfleet._framework_api import FrameworkApi

__all__ = ["save_model", "load_model", "get"]


def _check_script(obj: Any) -> None:
    import torch

    if not isinstance(obj, torch.jit.ScriptModule):
        raise InvalidArgument(
            "runnerfleet.torchscript.save_model expects a torch.jit.ScriptModule (torch.jit.script "
            f"or torch.jit.trace), got {type(obj).__name__}; use runnerfleet.pytorch for modules"
        )


_API = FrameworkApi("torchscript", check=_check_script)
save_model = _API.save_model
load_model = _API.load_model
get = _API.get
