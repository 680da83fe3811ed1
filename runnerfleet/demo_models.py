"""The demo models every process can rebuild: iris_clf, digits_mlp, heavy_mlp and echo.

The torch module classes live here so any process that imports this module can unpickle them.
Each model is saved with a ``sample_input`` so its tensor specs are concrete.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from store.tag import Tag

__all__ = [
    "DigitsMLP",
    "HeavyMLP",
    "Echo",
    "save_iris",
    "save_digits_torch",
    "save_heavy_mlp",
    "save_echo",
    "seed_demo",
    "seed_demo_report",
    "iris_data",
    "digits_data",
    "HEAVY_IN_FEATURES",
]

HEAVY_IN_FEATURES = 64
HEAVY_HIDDEN = 4096
HEAVY_OUT_FEATURES = 10
_SEED = 0


class DigitsMLP(nn.Module):
    """8x8 digit images (64 pixel values 0..16) -> 10 class logits."""

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x / 16.0)


class HeavyMLP(nn.Module):
    """Untrained 64 -> 4096 -> 4096 -> 10 MLP (fixed seed): a compute-heavy serving load."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(HEAVY_IN_FEATURES, HEAVY_HIDDEN),
            nn.ReLU(),
            nn.Linear(HEAVY_HIDDEN, HEAVY_HIDDEN),
            nn.ReLU(),
            nn.Linear(HEAVY_HIDDEN, HEAVY_OUT_FEATURES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Echo(nn.Module):
    """Returns its input unchanged (for bandwidth tests)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def iris_data() -> tuple[np.ndarray, np.ndarray]:
    """Iris features as float64 (sklearn's own dtype, so its spec is FP64) and labels."""
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x.astype(np.float64), y


def digits_data() -> tuple[np.ndarray, np.ndarray]:
    """Digits pixels (0..16) as float32 and labels."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x.astype(np.float32), y


def save_iris() -> Tag:
    """Logistic regression on iris: predict and predict_proba, batchable, float64 inputs."""
    from sklearn.linear_model import LogisticRegression

    import runnerfleet

    x, y = iris_data()
    clf = LogisticRegression(max_iter=1000).fit(x, y)
    model = runnerfleet.sklearn.save_model(
        "iris_clf",
        clf,
        signatures={"predict": {"batchable": True}, "predict_proba": {"batchable": True}},
        labels={"demo": "true", "framework": "sklearn"},
        metadata={"train_accuracy": float(clf.score(x, y))},
        sample_input=x[:2],
    )
    return model.tag


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Train on one thread: tiny ops gain nothing from more, and lose 10x+ on a busy host."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def save_digits_torch(epochs: int = 100) -> Tag:
    """A small MLP trained on the digits set (full-batch Adam, fixed seed), ``__call__``."""
    import runnerfleet

    torch.manual_seed(_SEED)
    x, y = digits_data()
    module = DigitsMLP()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    with _one_torch_thread():
        for _ in range(epochs):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(module(inputs), targets)
            loss.backward()
            optimizer.step()
    module.eval()
    with torch.inference_mode():
        accuracy = float((module(inputs).argmax(1) == targets).float().mean())
    model = runnerfleet.pytorch.save_model(
        "digits_mlp",
        module,
        signatures={"__call__": {"batchable": True, "batch_dim": 0}},
        labels={"demo": "true", "framework": "pytorch"},
        metadata={"train_accuracy": accuracy},
        sample_input=x[:2],
    )
    return model.tag


def save_heavy_mlp() -> Tag:
    """The untrained heavy MLP in float32 (about 68 MB of weights)."""
    import runnerfleet

    torch.manual_seed(_SEED)
    module = HeavyMLP().float().eval()
    sample = np.zeros((2, HEAVY_IN_FEATURES), dtype=np.float32)
    model = runnerfleet.pytorch.save_model(
        "heavy_mlp",
        module,
        signatures={"__call__": {"batchable": True, "batch_dim": 0}},
        labels={"demo": "true", "framework": "pytorch"},
        sample_input=sample,
    )
    return model.tag


def save_echo() -> Tag:
    """Identity over float32 arrays of any shape (batch axis 0)."""
    import runnerfleet

    any_shape: list[dict[str, Any]] = [{"name": "input__0", "dtype": "float32", "shape": [-1, -1]}]
    out_shape: list[dict[str, Any]] = [{"name": "output__0", "dtype": "float32", "shape": [-1, -1]}]
    model = runnerfleet.pytorch.save_model(
        "echo",
        Echo(),
        signatures={
            "__call__": {
                "batchable": True,
                "batch_dim": 0,
                "input_spec": any_shape,
                "output_spec": out_shape,
            }
        },
        labels={"demo": "true", "framework": "pytorch"},
        sample_input=np.zeros((1, 4), dtype=np.float32),
    )
    return model.tag


def _latest(name: str) -> Tag | None:
    """The newest stored version of ``name``, or None when the store has none."""
    import store
    from protos.errors import NotFound

    try:
        return store.get(f"{name}:latest").tag
    except NotFound:
        return None


def seed_demo_report(heavy: bool = False, force: bool = False) -> list[tuple[Tag, bool]]:
    """Save each demo model the store lacks; (tag, saved) per model, saved False when kept.

    Idempotent unless ``force``: a model with any stored version is left as it is, so running
    the seeding job again (docker compose re-runs store-init on every ``up --scale``; a
    Kubernetes Job may be retried) never changes which version ``latest`` serves.
    """
    savers: list[tuple[str, Callable[[], Tag]]] = [
        ("iris_clf", save_iris),
        ("digits_mlp", save_digits_torch),
        ("echo", save_echo),
    ]
    if heavy:
        savers.append(("heavy_mlp", save_heavy_mlp))
    out = []
    for name, save in savers:
        existing = None if force else _latest(name)
        out.append((existing, False) if existing is not None else (save(), True))
    return out


def seed_demo(heavy: bool = False, force: bool = False) -> list[Tag]:
    """Tags of iris_clf, digits_mlp and echo (and heavy_mlp when ``heavy``), saving the missing."""
    return [tag for tag, _ in seed_demo_report(heavy=heavy, force=force)]
