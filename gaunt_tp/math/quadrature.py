"""Sphere quadrature grids that integrate band-limited functions exactly.

A function is band-limited to ``band`` when it is a combination of harmonics of
degree ``<= band`` (a product of harmonics of degrees l1, l2, l3 is band-limited
to l1+l2+l3). Angles follow :mod:`gaunt_tp.math.conventions` (theta from e3nn's
polar axis y).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

__all__ = ["SphereGrid", "gauss_legendre_grid"]


class SphereGrid:
    """A product grid on the sphere: ``n_theta`` polar angles times ``n_phi`` azimuths.

    Attributes:
        theta: ``[n_theta]`` polar angles (float64).
        phi: ``[n_phi]`` azimuths, equally spaced from 0 (float64).
        weights: ``[n_theta, n_phi]`` quadrature weights; they sum to 4 pi.
        band: the degree up to which ``sum(weights * f)`` equals the integral of f.
    """

    def __init__(self, theta: torch.Tensor, phi: torch.Tensor, weights: torch.Tensor, band: int) -> None:
        self.theta = theta
        self.phi = phi
        self.weights = weights
        self.band = band

    @property
    def size(self) -> int:
        """Number of points, ``n_theta * n_phi``."""
        return self.theta.numel() * self.phi.numel()

    def mesh(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Angles of every point, each ``[n_theta, n_phi]`` (theta varies along dim 0)."""
        return torch.meshgrid(self.theta, self.phi, indexing="ij")


@functools.cache
def _gauss_legendre(band: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_theta = band // 2 + 1
    n_phi = band + 1
    cos_theta, w_theta = np.polynomial.legendre.leggauss(n_theta)
    theta = np.arccos(cos_theta)
    phi = 2 * math.pi * np.arange(n_phi) / n_phi
    weights = np.outer(w_theta, np.full(n_phi, 2 * math.pi / n_phi))
    return theta, phi, weights


def gauss_legendre_grid(band: int) -> SphereGrid:
    """The smallest Gauss-Legendre x equiangular grid exact up to degree ``band``.

    ``n_theta = band // 2 + 1`` Gauss-Legendre nodes in cos(theta) integrate every
    polynomial in cos(theta) of degree <= 2 n_theta - 1 >= band; ``n_phi = band + 1``
    equally spaced azimuths integrate exp(i k phi) exactly for |k| <= band.

    Args:
        band: highest degree integrated exactly (>= 0).

    Example:
        >>> grid = gauss_legendre_grid(4)
        >>> grid.theta.shape, grid.phi.shape, round(float(grid.weights.sum()), 12)
        (torch.Size([3]), torch.Size([5]), 12.566370614359)
    """
    if not isinstance(band, int) or band < 0:
        raise ValueError(f"band must be a non-negative int, got {band!r}")
    theta, phi, weights = _gauss_legendre(band)
    return SphereGrid(torch.from_numpy(theta.copy()), torch.from_numpy(phi.copy()), torch.from_numpy(weights.copy()), band)
