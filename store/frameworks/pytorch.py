"""PyTorch adapter: nn.Module (pickled whole) or TorchScript, loadable on CPU or CUDA.

Calls convert each numpy argument to a tensor on the device once, run under
``torch.inference_mode()`` and return numpy arrays on the CPU.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from protos.errors import FailedPrecondition, InvalidArgument

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
    "module_device",
    "make_native_method",
]

FRAMEWORK = "torch"
_EAGER_FILE = "model.pt"
_SCRIPT_FILE = "model.torchscript"


def framework_version() -> str:
    import torch

    return str(torch.__version__)


def _is_script(obj: Any) -> bool:
    import torch

    return isinstance(obj, torch.jit.ScriptModule)


def check(obj: Any) -> None:
    import torch

    if not isinstance(obj, torch.nn.Module):
        raise InvalidArgument(
            "runnerfleet.pytorch.save_model expects a torch.nn.Module (or TorchScript module), "
            f"got {type(obj).__name__}"
        )


def module_device(obj: Any) -> str:
    """Where a module's parameters live (``cpu`` when it has none)."""
    for tensor in list(obj.parameters()) + list(obj.buffers()):
        return str(tensor.device)
    return "cpu"


def has_method(obj: Any, name: str) -> bool:
    return name == "__call__" or callable(getattr(obj, name, None))


def default_signatures(obj: Any) -> dict[str, dict[str, Any]]:
    return {"__call__": {"batchable": False}}


def save(obj: Any, directory: str) -> None:
    import torch

    if _is_script(obj):
        torch.jit.save(obj, os.path.join(directory, _SCRIPT_FILE))
        return
    import cloudpickle

    try:  # cloudpickle: a class defined in __main__ or a notebook travels by value
        torch.save(obj, os.path.join(directory, _EAGER_FILE), pickle_module=cloudpickle)
    except (AttributeError, TypeError, pickle.PicklingError) as exc:
        raise InvalidArgument(
            f"cannot pickle module of type {type(obj).__qualname__}: {exc}; pass the module "
            "that defines it in external_modules=[...], or save it as TorchScript"
        ) from exc


def _device(device: str) -> Any:
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidArgument(f"invalid device {device!r}: {exc}") from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise FailedPrecondition(f"device {device!r} requested but CUDA is not available")
    return parsed


def load(model: Model, device: str = "cpu") -> Any:
    """The module on ``device`` in eval mode (map_location moves CUDA-saved tensors)."""
    import torch

    target = _device(device)
    script_path = model.path_of(_SCRIPT_FILE)
    if os.path.exists(script_path):
        module = torch.jit.load(script_path, map_location=target)  # type: ignore[no-untyped-call]
    else:
        # Trusted store only: a pickled module executes code on load (DESIGN.md section 2).
        module = torch.load(model.path_of(_EAGER_FILE), map_location=target, weights_only=False)
        module = module.to(target)
    module.eval()
    return module


def _to_tensor(value: Any, device: Any) -> Any:
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device)
    if not isinstance(value, np.ndarray | np.generic):
        return value
    arr = np.asarray(value)
    if arr.dtype.kind in "OUSV":
        raise InvalidArgument(f"a torch model cannot take a {arr.dtype} array")
    if not arr.dtype.isnative or any(s < 0 for s in arr.strides):
        arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
    if not arr.flags.writeable:  # torch refuses read-only views: one memcpy, then the device
        return torch.from_numpy(arr.copy()).to(device)
    return torch.as_tensor(arr, device=device)


def _to_numpy(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu")
        if value.dtype == torch.bfloat16:
            value = value.float()
        return value.numpy()
    if isinstance(value, tuple | list):
        return tuple(_to_numpy(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    return value


def make_native_method(obj: Any, name: str, device: str = "cpu") -> Callable[..., Any]:
    """numpy or tensors in -> tensors on ``device`` -> method under inference_mode -> tensors.

    What a torch runner answers (as in BentoML): ``.argmax(dim=1)`` and ``.cpu().numpy()`` work.
    """
    import torch

    target = torch.device(device)
    fn = obj if name == "__call__" else getattr(obj, name)

    def call(*args: Any, **kwargs: Any) -> Any:
        tensors = [_to_tensor(a, target) for a in args]
        named = {k: _to_tensor(v, target) for k, v in kwargs.items()}
        with torch.inference_mode():
            return fn(*tensors, **named)

    call.__name__ = name
    return call


def make_method(obj: Any, name: str, device: str = "cpu") -> Callable[..., Any]:
    """numpy in -> tensors on ``device`` -> method under inference_mode -> numpy on CPU."""
    native = make_native_method(obj, name, device)

    def call(*args: Any, **kwargs: Any) -> Any:
        return _to_numpy(native(*args, **kwargs))

    call.__name__ = name
    return call
