"""The save_model/load_model/get trio shared by runnerfleet.sklearn and runnerfleet.pytorch."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from protos.errors import InvalidArgument
from runnerfleet.sdk.model import Model, wrap
from store import Model as StoreModel
from store import Tag, default_store
from store import save_model as _save_model

__all__ = ["FrameworkApi"]


class FrameworkApi:
    """Binds the generic store functions to one framework ``module`` name."""

    def __init__(self, module: str) -> None:
        self.module = module

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
        return wrap(
            _save_model(
                self.module,
                name,
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
        model = default_store().get(tag)
        if model.info.module != self.module:
            raise InvalidArgument(
                f"model {model.tag} was saved with runnerfleet.{model.info.module}, "
                f"not runnerfleet.{self.module}"
            )
        return wrap(model)

    def load_model(self, tag: str | Tag | StoreModel, device: str = "cpu") -> Any:
        model = tag if isinstance(tag, StoreModel) else self.get(tag)
        return model.load_model(device)
