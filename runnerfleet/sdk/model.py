"""The SDK's Model: a stored model version that can also make a Runner (``to_runner``).

``store.Model`` stays runner-free (the store is the floor below); the public getters
(``runnerfleet.models.get``, ``runnerfleet.sklearn.get`` ...) wrap what the store returns in
this subclass, so ``runnerfleet.models.get(tag).to_runner()`` works without an import circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runnerfleet.sdk.runner import Runner
from store.model import Model as StoreModel

__all__ = ["Model", "wrap"]


@dataclass(frozen=True, repr=False, eq=False)
class Model(StoreModel):
    """A ``store.Model`` plus ``to_runner()``; equal (by tag) to the store model of that version."""

    __eq__ = StoreModel.__eq__
    __hash__ = StoreModel.__hash__

    def with_options(self, **options: Any) -> Model:
        """A copy whose ``info.options`` has ``options`` added (the stored version is unchanged)."""
        return wrap(super().with_options(**options))

    def to_runnable(self) -> type[Any]:
        """This model's Runnable class (``runnerfleet.Runnable`` subclass); subclass it freely."""
        from runnerfleet.sdk.model_runnable import model_runnable

        return model_runnable(self)

    def to_runner(
        self,
        name: str | None = None,
        *,
        max_batch_size: int | None = None,
        max_latency_ms: float | None = None,
        method_configs: dict[str, dict[str, Any]] | None = None,
        embedded: bool = False,
        scheduling_strategy: Any = None,
    ) -> Runner:
        """A Runner for this model (call ``init_local()`` or let a server bind it)."""
        return Runner(
            self,
            name=name,
            max_batch_size=max_batch_size,
            max_latency_ms=max_latency_ms,
            method_configs=method_configs,
            embedded=embedded,
            scheduling_strategy=scheduling_strategy,
        )


def wrap(model: StoreModel) -> Model:
    """``model`` as an SDK Model (the same object if it already is one)."""
    if isinstance(model, Model):
        return model
    return Model(model.tag, model.path, model.info)
