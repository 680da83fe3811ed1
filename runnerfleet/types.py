"""``runnerfleet.types``: the types users annotate with (BentoML 1.x's ``bentoml.types`` names)."""

from __future__ import annotations

from typing import Any, TypedDict

from store.model import Model, ModelContext, ModelInfo, ModelSignature, TensorSpec
from store.tag import Tag

__all__ = [
    "Tag",
    "Model",
    "ModelInfo",
    "ModelContext",
    "ModelSignature",
    "ModelSignatureDict",
    "TensorSpec",
    "MethodConfig",
]


class ModelSignatureDict(TypedDict, total=False):
    """One entry of ``save_model(signatures={method: {...}})``."""

    batchable: bool
    batch_dim: int | tuple[int, int]
    input_spec: Any
    output_spec: Any
    input_names: list[str]
    output_names: list[str]


class MethodConfig(TypedDict, total=False):
    """One entry of ``Runner(method_configs={method: {...}})``."""

    max_batch_size: int
    max_latency_ms: float
