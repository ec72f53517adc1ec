"""MACE's transforms of edge lengths before the radial basis (mace-torch's ``--distance_transform``).

Both rescale a length r by the covalent radii R_i, R_j of the edge's two atoms (ASE's ``ase.data.covalent_radii``),
so that the Bessel functions resolve short bonds of every element alike; the cutoff envelope still takes r itself.

- ``"Agnesi"`` (ACEpotentials.jl's, JCP 159, 044118 (2023)): ``1 / (1 + a y^q / (1 + y^(q - p)))`` with
  ``y = r / r_0``, ``r_0 = (R_i + R_j) / 2``; a = 1.0805, q = 0.9183, p = 4.5791. A value in (0, 1], decreasing in r.
- ``"Soft"``: ``p_0 + (r - p_0) (1 + tanh(alpha (r - m) / (p_1 - p_0))) / 2`` with ``r_0 = R_i + R_j``,
  ``p_0 = 3 r_0 / 4``, ``p_1 = 4 r_0 / 3``, ``m = (p_0 + p_1) / 2``, alpha = 4: about p_0 for short edges, r beyond
  p_1, so that atoms pressed together see a floor of length.

The constants are buffers, read from a converted model's weights so that they keep its rounding.
"""

from __future__ import annotations

import torch
from torch import nn

from gaunt_tp.nn.radial import covalent_radii

__all__ = ["DISTANCE_TRANSFORMS", "AgnesiTransform", "SoftTransform"]


class _Transform(nn.Module):
    """Covalent radii of the model's elements (``radii [elements]``, Angstrom) and ``forward(lengths [U], first
    [U], second [U])`` (the lengths of U edges and the element indices of their two atoms) -> ``[U]``."""

    def __init__(self, atomic_numbers: tuple[int, ...], constants: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("radii", covalent_radii(atomic_numbers))
        self.register_buffer("constants", torch.tensor(constants, dtype=torch.float64))

    def sums(self, lengths: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        radii = self.radii.to(lengths.dtype)
        return radii.index_select(0, first) + radii.index_select(0, second)


class AgnesiTransform(_Transform):
    """The Agnesi transform (module docstring); ``constants`` = (a, q, p)."""

    def __init__(self, atomic_numbers: tuple[int, ...]) -> None:
        super().__init__(atomic_numbers, (1.0805, 0.9183, 4.5791))

    def forward(self, lengths: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        a, q, p = self.constants.to(lengths.dtype)
        y = lengths / (0.5 * self.sums(lengths, first, second))
        return 1.0 / (1.0 + a * y**q / (1.0 + y ** (q - p)))


class SoftTransform(_Transform):
    """The soft floor (module docstring); ``constants`` = (alpha,)."""

    def __init__(self, atomic_numbers: tuple[int, ...]) -> None:
        super().__init__(atomic_numbers, (4.0,))

    def forward(self, lengths: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        r_0 = self.sums(lengths, first, second)
        low, high = 0.75 * r_0, 4.0 / 3.0 * r_0
        steepness = self.constants[0].to(lengths.dtype) / (high - low)
        step = 0.5 * (1.0 + torch.tanh(steepness * (lengths - (low + high) / 2)))
        return low + (lengths - low) * step


# ModelConfig.distance_transform: MACE's names ("None": lengths as they are)
DISTANCE_TRANSFORMS = {"None": None, "Agnesi": AgnesiTransform, "Soft": SoftTransform}
