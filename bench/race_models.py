"""The models users serve, for the race: a ResNet-18-sized CNN, a tree ensemble, a transformer.

Each `save_*` puts a seeded model into the store of RUNNERFLEET_HOME (as `runnerfleet.demo_models`
does for iris, the heavy MLP and echo) and returns its tag. `bench/prepare.py` exports the same
weights to the peers (TorchScript trace / joblib) and hashes them.

- `resnet18`: ResNet-18 (BasicBlock [2, 2, 2, 2], 11.7 M parameters, 1000 classes) on
  3x224x224 FP32 images, written with torch.nn: torchvision is not a project dependency and
  its PyPI wheels pin their own torch build (see bench/README.md), so the same architecture is
  defined here, seeded, untrained (serving cost does not depend on the weights' values).
- `hgb`: scikit-learn HistGradientBoostingRegressor, 100 trees of depth <= 6 on 32 features,
  fitted on a seeded synthetic regression set (float outputs, so swapped answers show).
- `transformer`: torch.nn.TransformerEncoder, 2 layers, d_model 128, 4 heads, FFN 512, on
  sequences of 128 tokens' embeddings (FP32 [128, 128] per row), mean-pooled into 10 logits.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = [
    "HGB_FEATURES",
    "TRANSFORMER_SEQ",
    "TRANSFORMER_DIM",
    "ResNet18",
    "SmallTransformer",
    "save_hgb",
    "save_resnet18",
    "save_transformer",
]

_SEED = 1313
HGB_FEATURES = 32
TRANSFORMER_SEQ = 128
TRANSFORMER_DIM = 128


class _Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.down(x))


class ResNet18(nn.Module):
    """torchvision's resnet18 layout: stem, 4 stages of 2 BasicBlocks, avgpool, fc."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        blocks: list[nn.Module] = []
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [_Basic(cin, cout, stride), _Basic(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


class SmallTransformer(nn.Module):
    """TransformerEncoder (2 layers, d_model 128, 4 heads) -> mean over tokens -> 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            TRANSFORMER_DIM, 4, dim_feedforward=512, dropout=0.0, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(TRANSFORMER_DIM, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x).mean(dim=1))


def _save_torch(name: str, module: nn.Module, row_shape: tuple[int, ...]):
    import runnerfleet

    module = module.float().eval()
    model = runnerfleet.pytorch.save_model(
        name,
        module,
        signatures={"__call__": {"batchable": True, "batch_dim": 0}},
        labels={"bench": "true", "framework": "pytorch"},
        sample_input=np.zeros((2, *row_shape), dtype=np.float32),
    )
    return model.tag


def save_resnet18():
    torch.manual_seed(_SEED)
    return _save_torch("resnet18", ResNet18(), (3, 224, 224))


def save_transformer():
    torch.manual_seed(_SEED)
    return _save_torch("transformer", SmallTransformer(), (TRANSFORMER_SEQ, TRANSFORMER_DIM))


def save_hgb():
    from sklearn.ensemble import HistGradientBoostingRegressor

    import runnerfleet

    rng = np.random.default_rng(_SEED)
    x = rng.standard_normal((2000, HGB_FEATURES))
    y = x[:, :8] @ rng.standard_normal(8) + np.sin(x[:, 8] * 3) + 0.1 * rng.standard_normal(2000)
    est = HistGradientBoostingRegressor(
        max_iter=100, max_depth=6, early_stopping=False, random_state=0
    ).fit(x, y)
    model = runnerfleet.sklearn.save_model(
        "hgb",
        est,
        signatures={"predict": {"batchable": True}},
        labels={"bench": "true", "framework": "sklearn"},
        sample_input=x[:2],
    )
    return model.tag
