"""SiLU scaled to unit second moment (e3nn's ``normalize2mom``, as MACE's MLPs use it)."""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

__all__ = ["NormalizedSiLU", "silu_second_moment"]


@functools.cache
def silu_second_moment() -> float:
    """``E[silu(z)^2]`` for z ~ N(0, 1) (Gauss-Hermite quadrature, float64): about 0.3558."""
    z, w = np.polynomial.hermite_e.hermegauss(100)
    silu = z / (1.0 + np.exp(-z))
    return float((w * silu**2).sum() / w.sum())


class NormalizedSiLU(nn.Module):
    """``silu(x) / sqrt(E[silu(z)^2])``: unit second moment for unit-normal inputs.

    Shape:
        any -> same.
    """

    def __init__(self) -> None:
        super().__init__()
        self.scale = silu_second_moment() ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.silu(x) * self.scale
