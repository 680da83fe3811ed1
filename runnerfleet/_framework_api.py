"""The save_model/load_model/get trio shared by runnerfleet.sklearn and runnerfleet.pytorch."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from protos.errors import NotFound
from runnerfleet.sdk.model import Model, wrap
from runnerfleet.sdk.runner_options import lower_name
from store import Model as StoreModel
from store import Tag, default_store
from store import save_model as _save_model

__all__ = ["FrameworkApi"]


class FrameworkApi:
    """Binds the generic store functions to one framework ``module`` name."""

    def __init__(self, module: str, check: Any = None) -> None:
        self.module = module
        self._check = check  # extra check of the object to save (torchscript: a ScriptModule)

    def save_model(
        self,
        name: str,
        model: Any,
        *,
        signatures: Mapping[str, Any] | None = None,
        labels: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
        custom_objects: Mapping[str, Any] | None = None,
        sample_input: Any = None,
        external_modules: Iterable[ModuleType] | None = None,
    ) -> Model:
        if self._check is not None:
            self._check(model)
        return wrap(
            _save_model(
                self.module,
                lower_name(name, "model name"),
                model,
                signatures=signatures,
                labels=labels,
                metadata=metadata,
                custom_objects=custom_objects,
                sample_input=sample_input,
                external_modules=external_modules,
            )
        )

    def get(self, tag: str | Tag) -> Model:
        """The stored model; NotFound when it was saved by another framework (as BentoML)."""
        model = default_store().get(tag)
        if model.info.module != self.module:
            raise NotFound(
                f"model {model.tag} was saved with runnerfleet.{model.info.module}, "
                f"not runnerfleet.{self.module}"
            )
        return wrap(model)

    def load_model(
        self, tag: str | Tag | StoreModel, device: str = "cpu", *, device_id: str | None = None
    ) -> Any:
        """The framework object on ``device_id`` (BentoML's name) or ``device``."""
        model = tag if isinstance(tag, StoreModel) else self.get(tag)
        if model.info.module != self.module:
            raise NotFound(f"model {model.tag} was not saved with runnerfleet.{self.module}")
        return model.load_model(device_id or device)
