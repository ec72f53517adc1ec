"""Input checks shared by the operations and modules."""

from __future__ import annotations

import torch

__all__ = ["index_range"]


def index_range(index: torch.Tensor) -> tuple[int, int]:
    """The smallest and largest entry of a non-empty integer tensor: one operation, read back once (the
    range checks run on every call of a model's layers, where each small operation costs microseconds)."""
    low, high = torch.aminmax(index)
    return int(low.tolist()), int(high.tolist())
