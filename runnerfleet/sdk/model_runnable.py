"""``Model.to_runnable()``: the Runnable class of a stored model, for runners and subclassing.

As BentoML's framework runnables do, an instance loads the framework object as ``self.model``
(``self.bento_model`` is the stored Model) and exposes one runnable method per signature with
its batchable/batch_dim. A subclass may override a method (``self.model.predict(...)``) or
add new ones with ``@Runnable.method``. A torch model's methods take numpy arrays or tensors
and answer tensors on the model's device, as BentoML's pytorch runner does.
"""

from __future__ import annotations

from typing import Any

from runnerfleet.sdk.runnable import Runnable
from store.model import Model

__all__ = ["model_runnable", "ModelRunnable"]

_GPU = "nvidia.com/gpu"


class ModelRunnable(Runnable):
    """Base of every stored model's Runnable class; ``bento_model`` is set per subclass."""

    bento_model: Model
    TAKES_DEVICE = True  # init_local(device=...) reaches __init__
    SUPPORTS_CPU_MULTI_THREADING = True

    def __init__(self, device: str = "cpu") -> None:
        from store.frameworks import get_adapter

        adapter = get_adapter(self.bento_model.info.module)
        self.device = device
        self.model = adapter.load(self.bento_model, device)
        make = getattr(adapter, "make_native_method", adapter.make_method)
        self._calls = {
            name: make(self.model, name, device) for name in self.bento_model.info.signatures
        }


def _method(name: str) -> Any:
    def call(self: ModelRunnable, *args: Any, **kwargs: Any) -> Any:
        return self._calls[name](*args, **kwargs)

    call.__name__ = name
    call.__qualname__ = f"ModelRunnable.{name}"
    return call


def model_runnable(model: Model) -> type[ModelRunnable]:
    """A new ModelRunnable subclass for ``model`` with one method per signature."""
    framework = model.info.module
    resources = ("cpu", _GPU) if framework in ("pytorch", "torchscript") else ("cpu",)
    cls: type[ModelRunnable] = type(
        f"{framework.title().replace('_', '')}Runnable",
        (ModelRunnable,),
        {"bento_model": model, "SUPPORTED_RESOURCES": resources, "__module__": __name__},
    )
    for name, sig in model.info.signatures.items():
        cls.add_method(_method(name), name, batchable=sig.batchable, batch_dim=sig.batch_dim)
    return cls
