"""Train and save the examples' models, as BentoML's quickstart and framework pages do.

Run as a script (``python train.py``) so the torch module class lives in ``__main__``, the way
a user's training script defines it: cloudpickle saves it by value for the workers.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn import svm
from sklearn.datasets import load_digits, load_iris

import runnerfleet


class SimpleConvNet(torch.nn.Module):
    """A small MLP on 8x8 digits (the pytorch example's MNIST net, scaled to sklearn's digits)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def save_quickstart() -> None:
    """BentoML quickstart: an SVC on iris saved as iris_clf."""
    x, y = load_iris(return_X_y=True)
    clf = svm.SVC(gamma="scale").fit(x, y)
    saved = runnerfleet.sklearn.save_model("iris_clf", clf)
    print(f"Model saved: {saved}")


def save_pytorch() -> None:
    """The pytorch example: train briefly, save with a batchable __call__."""
    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    inputs = torch.tensor((x / 16.0).reshape(-1, 1, 8, 8), dtype=torch.float32)
    labels = torch.tensor(y)
    net = SimpleConvNet()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(60):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(inputs), labels)
        loss.backward()
        optimizer.step()
    saved = runnerfleet.pytorch.save_model(
        "pytorch_mnist",
        net,
        signatures={"__call__": {"batchable": True, "batch_dim": 0}},
        sample_input=np.zeros((1, 1, 8, 8), np.float32),
    )
    print(f"Model saved: {saved}")


if __name__ == "__main__":
    save_quickstart()
    save_pytorch()
