"""SiLU scaled to unit second moment (e3nn's ``normalize2mom``, as MACE's MLPs use it)."""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

__all__ = ["NormalizedSiLU", "silu_factor", "silu_second_moment"]


@functools.cache
def silu_second_moment() -> float:
    """``E[silu(z)^2]`` for z ~ N(0, 1) (Gauss-Hermite quadrature, float64): about 0.3558."""
    z, w = np.polynomial.hermite_e.hermegauss(100)
    silu = z / (1.0 + np.exp(-z))
    return float((w * silu**2).sum() / w.sum())


def silu_factor(scale: float | None = None) -> float:
    """The factor on silu that gives unit second moment for unit-normal inputs, ``1 / sqrt(E[silu(z)^2])`` (about
    1.6765), or ``scale`` where given (e3nn's Monte Carlo estimate of it, say, which MACE's trained networks carry)."""
    return silu_second_moment() ** -0.5 if scale is None else float(scale)


class NormalizedSiLU(nn.Module):
    """``silu(x) / sqrt(E[silu(z)^2])``: unit second moment for unit-normal inputs.

    Args:
        scale: the factor on silu, in place of the exact ``1 / sqrt(E[silu(z)^2])`` (None), e.g. e3nn's Monte
            Carlo estimate of it, which models trained with e3nn's networks carry.

    Shape:
        any -> same.
    """

    def __init__(self, scale: float | None = None) -> None:
        super().__init__()
        self.scale = silu_factor(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.silu(x) * self.scale
