"""Tiny torch test models; they live here so worker processes can unpickle them."""

from __future__ import annotations

import time

import torch
from torch import nn

__all__ = ["Picky", "Slow", "CallLog", "RowCost"]


class Picky(nn.Module):
    """Doubles its input; raises when any value is negative (to test bisection)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x < 0).any()):
            raise ValueError("picky refuses negative inputs")
        return x * 2


class Slow(nn.Module):
    """Adds one after sleeping ``delay_s`` per call (to keep requests queued)."""

    def __init__(self, delay_s: float = 0.1) -> None:
        super().__init__()
        self.delay_s = delay_s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay_s)
        return x + 1


class CallLog(nn.Module):
    """Returns its input and appends one line per call to ``path`` (to see warm-up calls)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with open(self.path, "a", encoding="utf-8") as log:
            log.write(f"{tuple(x.shape)}\n")
        return x


class RowCost(nn.Module):
    """Returns ``2 * x + 1`` after sleeping ``fixed_s + per_row_s * rows`` (a costed model).

    The overload tests serve it so capacity is known and every answer can be checked: a batch of
    n rows costs ``fixed_s + per_row_s * n`` whatever the machine, like a real accelerator.
    """

    def __init__(self, fixed_s: float = 0.020, per_row_s: float = 0.003) -> None:
        super().__init__()
        self.fixed_s = fixed_s
        self.per_row_s = per_row_s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.fixed_s + self.per_row_s * int(x.shape[0]))
        return x * 2 + 1
