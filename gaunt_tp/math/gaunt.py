"""Gaunt coefficients: integrals of three real spherical harmonics (e3nn's basis).

``gaunt(l1, l2, l3)[m1, m2, m3] = integral Y_l1m1 Y_l2m2 Y_l3m3 dOmega`` with the
harmonics of :mod:`gaunt_tp.math.conventions`. The integrand is band-limited to
l1+l2+l3, so the Gauss-Legendre grid of that band computes it exactly (to float64
rounding). The coefficients vanish unless |l1-l2| <= l3 <= l1+l2 and l1+l2+l3 is
even (a product of harmonics is even under inversion then); those are the
parity-even paths of a Clebsch-Gordan product.
"""

from __future__ import annotations

import functools

import torch

from gaunt_tp.math.conventions import real_spherical_harmonics
from gaunt_tp.math.quadrature import gauss_legendre_grid

__all__ = ["check_degrees", "gaunt", "is_gaunt_path"]


def is_gaunt_path(l1: int, l2: int, l3: int) -> bool:
    """True when the Gaunt coefficients of (l1, l2, l3) can be non-zero.

    Example:
        >>> is_gaunt_path(1, 1, 2), is_gaunt_path(1, 1, 1)
        (True, False)
    """
    return abs(l1 - l2) <= l3 <= l1 + l2 and (l1 + l2 + l3) % 2 == 0


@functools.cache
def _gaunt(l1: int, l2: int, l3: int) -> torch.Tensor:
    out = torch.zeros(2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1, dtype=torch.float64)
    if not is_gaunt_path(l1, l2, l3):
        return out
    grid = gauss_legendre_grid(l1 + l2 + l3)
    theta, phi = grid.mesh()
    y = real_spherical_harmonics(max(l1, l2, l3), theta.reshape(-1), phi.reshape(-1))  # [P, n]
    w = grid.weights.reshape(-1)
    y1, y2, y3 = (y[:, l * l : (l + 1) ** 2] for l in (l1, l2, l3))
    out = torch.einsum("p,pi,pj,pk->ijk", w, y1, y2, y3)
    out[out.abs() < 1e-15] = 0.0  # exact zeros where symmetry says so
    return out


def gaunt(l1: int, l2: int, l3: int) -> torch.Tensor:
    """Gaunt coefficients of degrees (l1, l2, l3) in e3nn's real basis.

    Args:
        l1, l2, l3: non-negative degrees.

    Shape:
        returns ``[2*l1+1, 2*l2+1, 2*l3+1]``, float64, indexed by (m1, m2, m3) with
        ``m = -l..l``; all zeros on a path that is not a Gaunt path.

    Example:
        >>> import math
        >>> round(float(gaunt(0, 0, 0)[0, 0, 0]) * math.sqrt(4 * math.pi), 12)
        1.0
    """
    check_degrees(l1=l1, l2=l2, l3=l3)
    return _gaunt(l1, l2, l3).clone()


def check_degrees(**degrees: int) -> None:
    """Raise a ValueError naming any argument that is not a non-negative int."""
    for name, l in degrees.items():
        if not isinstance(l, int) or isinstance(l, bool) or l < 0:
            raise ValueError(f"{name} must be a non-negative int, got {l!r}")
