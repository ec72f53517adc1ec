"""Tables for products in an edge-aligned frame, where one factor is zonal about the polar axis (y).

Quarter turn
    ``quarter_turn(l)`` is e3nn's Wigner matrix ``D^l(Q)`` of the fixed rotation
    ``Q = R_z(+90 deg)`` (x -> y, y -> -x, z -> z). Rotations about y act on e3nn's
    harmonics by mixing the (m, -m) pairs with cos(m a), sin(m a); conjugating by Q
    turns them into rotations about x: ``D(Q)^T D_y(b) D(Q)``. With the degree-1 matrix
    ``D^1(Q) = Q`` (e3nn orders l = 1 as (x, y, z)).

Meridian quadrature
    In a frame where ``g`` is zonal about y (``g = sum_l2 g_l2 Y_l2,0``), the Gaunt product
    ``z_l3m = integral f g Y_l3m`` couples only equal orders m: writing
    ``Y_lm(theta, phi) = Theta_lm(theta) Phi_m(phi)`` with ``Phi_m = cos(m phi)`` (m > 0),
    ``1`` (m = 0), ``sin(|m| phi)`` (m < 0),

        z_l3m = c_m sum_q w_q Theta_l3m(theta_q) g(theta_q) sum_l1 x_l1m Theta_l1m(theta_q),

    with ``c_m = integral Phi_m^2 dphi`` (2 pi for m = 0, pi otherwise) and ``Q`` Gauss-Legendre
    nodes in cos(theta), exact because the integrand is a polynomial of degree
    ``l1 + l2 + l3`` in cos(theta). This equals the block-diagonal form
    ``z_l3m = sum_l1,l2 G(l1 m, l2 0, l3 m) x_l1m g_l2`` (G = :func:`gaunt_tp.math.gaunt`)
    at O(L^3) per product instead of O(L^4).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from e3nn import o3

from gaunt_tp.math.conventions import real_spherical_harmonics

__all__ = ["MeridianTables", "meridian_tables", "quarter_turn"]

QUARTER_TURN = ((0.0, -1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0))


@functools.cache
def _quarter_turn(l: int) -> torch.Tensor:
    # solve Y(Q p) = D Y(p) on points in general position (e3nn's matrix_exp route loses ~1e-7)
    q = torch.tensor(QUARTER_TURN, dtype=torch.float64)
    points = torch.randn(4 * (2 * l + 1), 3, dtype=torch.float64, generator=torch.Generator().manual_seed(l))
    y = o3.spherical_harmonics(l, points, normalize=True, normalization="integral")
    y_turned = o3.spherical_harmonics(l, points @ q.T, normalize=True, normalization="integral")
    d = torch.linalg.lstsq(y, y_turned).solution.T.contiguous()  # y @ D^T = y_turned
    d[d.abs() < 1e-14] = 0.0
    return d


def quarter_turn(l: int) -> torch.Tensor:
    """e3nn's ``D^l(Q)`` for ``Q = R_z(90 deg)`` (maps x to y), float64 ``[2l+1, 2l+1]``.

    Example:
        >>> quarter_turn(1).round().tolist()
        [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    return _quarter_turn(l).clone()


@dataclass(frozen=True)
class MeridianTables:
    """Meridian quadrature of one product: input degrees ``ls_in`` x zonal degrees ``ls_sh`` -> ``ls_out``.

    Orders m run over ``-mmax..mmax`` (``mmax = min(max(ls_in), max(ls_out))``), ``M = 2 mmax + 1``;
    ``K_in = len(ls_in)``, ``K_out = len(ls_out)``; ``Q`` quadrature nodes.

    Attributes:
        gather_in: ``[M, K_in]`` long, position of component (l_k, m) in the input class vector
            (any valid position where ``l_k < |m|``; ``evaluate`` is zero there).
        evaluate: ``[M, K_in, Q]``, ``Theta_{l_k m}(theta_q)``.
        zonal: ``[len(ls_sh), Q]``, ``Y_l2,0(theta_q)`` times ``Y_l2,0(y axis) = sqrt((2 l2 + 1) / (4 pi))``:
            the edge function at the nodes per unit radial weight.
        project: ``[M, Q, K_out]``, ``c_m w_q Theta_{l_k m}(theta_q)``.
        gather_out: ``[n_out]`` long, position of each output component in the flattened
            ``[M * K_out]`` result, or ``M * K_out`` (a zero appended there) when ``|m| > mmax``.
    """

    gather_in: torch.Tensor
    evaluate: torch.Tensor
    zonal: torch.Tensor
    project: torch.Tensor
    gather_out: torch.Tensor


def _offsets(ls: tuple[int, ...]) -> list[int]:
    return [sum(2 * l + 1 for l in ls[:k]) for k in range(len(ls))]


@functools.cache
def _meridian_tables(ls_in: tuple[int, ...], ls_sh: tuple[int, ...], ls_out: tuple[int, ...]) -> MeridianTables:
    mmax = min(max(ls_in), max(ls_out))
    orders = range(-mmax, mmax + 1)
    n_nodes = (max(ls_in) + max(ls_sh) + max(ls_out)) // 2 + 1
    cos_theta, weights = np.polynomial.legendre.leggauss(n_nodes)
    theta = torch.from_numpy(np.arccos(cos_theta))
    weights = torch.from_numpy(weights)
    lmax = max(*ls_in, *ls_sh, *ls_out)
    # Theta_lm(theta) = Y_lm(theta, phi_m) / Phi_m(phi_m) with Phi_m(phi_m) = 1
    theta_lm = {}
    for m in orders:
        phi = torch.full_like(theta, 0.0 if m >= 0 else math.pi / (2 * abs(m)))
        y = real_spherical_harmonics(lmax, theta, phi)  # [Q, (lmax+1)^2]
        for l in range(abs(m), lmax + 1):
            theta_lm[l, m] = y[:, l * l + l + m]
    zero = torch.zeros_like(theta)
    off_in = _offsets(ls_in)
    gather_in = torch.tensor(
        [[o + l + m if l >= abs(m) else 0 for l, o in zip(ls_in, off_in)] for m in orders], dtype=torch.long
    )
    evaluate = torch.stack([torch.stack([theta_lm.get((l, m), zero) for l in ls_in]) for m in orders])
    zonal = torch.stack([theta_lm[l, 0] * math.sqrt((2 * l + 1) / (4 * math.pi)) for l in ls_sh])
    project = torch.stack(
        [
            torch.stack([theta_lm.get((l, m), zero) for l in ls_out], dim=1)
            * (weights * (2 * math.pi if m == 0 else math.pi))[:, None]
            for m in orders
        ]
    )
    k_out = len(ls_out)
    pad = len(orders) * k_out
    positions = [
        (m + mmax) * k_out + k if abs(m) <= mmax else pad for k, l in enumerate(ls_out) for m in range(-l, l + 1)
    ]
    gather_out = torch.tensor(positions, dtype=torch.long)
    return MeridianTables(gather_in, evaluate, zonal, project, gather_out)


def meridian_tables(ls_in: tuple[int, ...], ls_sh: tuple[int, ...], ls_out: tuple[int, ...]) -> MeridianTables:
    """Tables of the m-diagonal Gaunt product with a zonal factor (float64; see the module docstring).

    Args:
        ls_in: degrees of the input class vector, in its order (each ``2l+1`` components, m = -l..l).
        ls_sh: degrees of the zonal factor.
        ls_out: degrees of the output class vector, in its order.

    Example:
        >>> t = meridian_tables((0, 1), (0, 1, 2), (0, 1, 2))
        >>> t.evaluate.shape, t.zonal.shape, t.project.shape, t.gather_out.shape
        (torch.Size([3, 2, 3]), torch.Size([3, 3]), torch.Size([3, 3, 3]), torch.Size([9]))
    """
    t = _meridian_tables(tuple(ls_in), tuple(ls_sh), tuple(ls_out))
    return MeridianTables(*(v.clone() for v in (t.gather_in, t.evaluate, t.zonal, t.project, t.gather_out)))
