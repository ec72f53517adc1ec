"""Radial features of edges: Bessel basis times a smooth polynomial cutoff, and the radial MLP."""

from __future__ import annotations

import math

import torch
from torch import nn

from gaunt_tp.nn.activation import silu_factor

__all__ = ["BesselBasis", "PolynomialCutoff", "RadialMLP", "covalent_radii", "polynomial_envelope"]


class BesselBasis(nn.Module):
    """``sqrt(2 / r_max) sin(n pi r / r_max) / r`` for n = 1..num_basis (DimeNet's basis, as in MACE).

    Shape:
        ``[E]`` lengths (Angstrom) -> ``[E, num_basis]``. Finite at r = 0 (limit n pi / r_max).
    """

    def __init__(self, r_max: float, num_basis: int = 8) -> None:
        super().__init__()
        if r_max <= 0 or num_basis < 1:
            raise ValueError(f"need r_max > 0 and num_basis >= 1, got {r_max}, {num_basis}")
        self.r_max = float(r_max)
        self.register_buffer("frequencies", math.pi / self.r_max * torch.arange(1, num_basis + 1, dtype=torch.float64))

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        w = self.frequencies.to(r.dtype)
        r = r[:, None]
        positive = r > 0
        values = torch.where(positive, torch.sin(w * r) / torch.where(positive, r, 1.0), w)
        return math.sqrt(2.0 / self.r_max) * values


class PolynomialCutoff(nn.Module):
    """Smooth envelope ``1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2)``, x = r / r_max.

    Equal to 1 at r = 0 and, with its first two derivatives, 0 at r = r_max; 0 beyond.

    Shape:
        ``[E]`` -> ``[E]``.
    """

    def __init__(self, r_max: float, p: int = 5) -> None:
        super().__init__()
        if p < 2:
            raise ValueError(f"the cutoff polynomial needs p >= 2, got {p}")
        self.r_max, self.p = float(r_max), float(p)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return polynomial_envelope(r / self.r_max, self.p)


def polynomial_envelope(x: torch.Tensor, p: float) -> torch.Tensor:
    """:class:`PolynomialCutoff`'s envelope of ``x = r / r_max`` (any shape), 0 for x >= 1."""
    a, b, c = (p + 1) * (p + 2) / 2, p * (p + 2), p * (p + 1) / 2
    envelope = 1.0 + x**p * (x * (b - c * x) - a)  # Horner's form: fewer operations, forward and backward
    return envelope * (x < 1.0)


def covalent_radii(atomic_numbers: tuple[int, ...]) -> torch.Tensor:
    """ASE's covalent radii (``ase.data.covalent_radii``, Angstrom) of ``atomic_numbers``, float64 ``[elements]``: the
    length scale of MACE's ZBL repulsion and distance transforms."""
    import ase.data

    table = torch.tensor(ase.data.covalent_radii, dtype=torch.float64)
    zs = [int(z) for z in atomic_numbers]
    if not all(1 <= z < len(table) for z in zs):
        raise ValueError(f"atomic numbers must be in 1..{len(table) - 1}, got {zs}")
    return table[zs]


class RadialMLP(nn.Module):
    """Per-edge weights from radial features: linear maps and SiLU, no biases (0 features give 0 weights).

    Parametrised like e3nn's ``FullyConnectedNet`` (MACE's radial MLP): weights drawn N(0, 1), each layer
    divides by the square root of its fan-in, and SiLU is scaled to unit second moment for unit-normal
    inputs, so every layer keeps unit variance at initialisation and an optimiser step changes every
    weight by a similar fraction. ``silu_scale`` replaces the exact SiLU normalisation (e.g. by e3nn's
    Monte Carlo estimate of it, which MACE's trained networks carry).

    Parameters:
        ``weights[i] [fan_in, fan_out]``.

    Shape:
        ``[E, num_basis]`` -> ``[E, out_features]``.
    """

    def __init__(
        self, in_features: int, hidden: tuple[int, ...], out_features: int, silu_scale: float | None = None
    ) -> None:
        super().__init__()
        sizes = (in_features, *hidden, out_features)
        self.weights = nn.ParameterList([nn.Parameter(torch.randn(a, b)) for a, b in zip(sizes[:-1], sizes[1:])])
        # 1 / sqrt(fan_in), times the SiLU normalisation (or silu_scale) for the layers that follow an activation
        act = silu_factor(silu_scale)
        self.scales = [a**-0.5 * (act if i > 0 else 1.0) for i, a in enumerate(sizes[:-1])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (w, scale) in enumerate(zip(self.weights, self.scales)):
            x = torch.nn.functional.silu(x) if i > 0 else x
            x = x @ (w * scale)
        return x
