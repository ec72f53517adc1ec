"""Gradients of e3nn's harmonics and the coefficients of the parity-odd product.

e3nn's ``spherical_harmonics(..., normalize=False)`` are homogeneous polynomials
``P_lm(r) = |r|^l Y_lm(r / |r|)``. On the unit sphere their gradient splits into the
surface gradient and a radial part, ``grad P_lm = grad_S Y_lm + l Y_lm r``, and the
radial part drops out of any triple product with ``r``.

The parity-odd product of two spherical functions f and g is the function
``r . (grad f x grad g)``; its coefficients are
``H(l1 m1, l2 m2, l3 m3) = integral r . (grad Y_l1m1 x grad Y_l2m2) Y_l3m3 dOmega``,
non-zero only when |l1-l2| <= l3 <= l1+l2 and l1+l2+l3 is odd (the Clebsch-Gordan
paths that Gaunt coefficients miss, such as the cross product 1 x 1 -> 1). Since
``r . (grad P_l1 x grad P_l2)`` is a polynomial of degree l1+l2-1, the rule of band
l1+l2+l3-1 integrates H exactly.
"""

from __future__ import annotations

import functools

import torch
from e3nn import o3

from gaunt_tp.math.gaunt import check_degrees
from gaunt_tp.math.quadrature import smallest_grid

__all__ = ["harmonic_gradients", "is_odd_path", "odd_product_coefficients"]


def harmonic_gradients(lmax: int, points: torch.Tensor) -> torch.Tensor:
    """Gradients of e3nn's homogeneous harmonic polynomials of degrees ``0..lmax``.

    Args:
        lmax: largest degree (<= 12, e3nn's limit).
        points: ``[P, 3]`` points (x, y, z); need not be unit vectors.

    Shape:
        returns ``[P, (lmax+1)**2, 3]`` float64, ``out[p, lm, k] = d P_lm / d r_k`` at ``points[p]``.

    Example:
        >>> import math
        >>> g = harmonic_gradients(1, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64))
        >>> [round(v * math.sqrt(4 * math.pi / 3), 12) for v in g[0, 1:].diagonal().tolist()]  # grad of sqrt(3/4pi) r
        [1.0, 1.0, 1.0]
    """
    pts = points.detach().to(torch.float64).clone().requires_grad_(True)
    with torch.enable_grad():
        values = o3.spherical_harmonics(list(range(lmax + 1)), pts, normalize=False, normalization="integral")
        grads = [
            torch.autograd.grad(values[:, i].sum(), pts, retain_graph=i + 1 < values.shape[1])[0]
            for i in range(values.shape[1])
        ]
    return torch.stack(grads, dim=1)


def is_odd_path(l1: int, l2: int, l3: int) -> bool:
    """True when the parity-odd product of degrees (l1, l2) reaches degree l3.

    Example:
        >>> is_odd_path(1, 1, 1), is_odd_path(1, 1, 2)
        (True, False)
    """
    return abs(l1 - l2) <= l3 <= l1 + l2 and (l1 + l2 + l3) % 2 == 1


@functools.cache
def _odd_coefficients(l1: int, l2: int, l3: int) -> torch.Tensor:
    out = torch.zeros(2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1, dtype=torch.float64)
    if not is_odd_path(l1, l2, l3):
        return out
    grid = smallest_grid(l1 + l2 + l3 - 1)
    r = grid.points
    grads = harmonic_gradients(max(l1, l2), r)
    g1 = grads[:, l1 * l1 : (l1 + 1) ** 2]  # [P, 2l1+1, 3]
    g2 = grads[:, l2 * l2 : (l2 + 1) ** 2]
    curl1 = torch.linalg.cross(r[:, None, :].expand_as(g1), g1, dim=-1)  # r x grad P_l1
    y3 = o3.spherical_harmonics(l3, r, normalize=False, normalization="integral")
    out = torch.einsum("p,pik,pjk,pl->ijl", grid.weights, curl1, g2, y3)  # (r x a) . b = r . (a x b)
    out[out.abs() < 1e-15] = 0.0
    return out


def odd_product_coefficients(l1: int, l2: int, l3: int) -> torch.Tensor:
    """``H(l1 m1, l2 m2, l3 m3) = integral r . (grad Y_l1m1 x grad Y_l2m2) Y_l3m3 dOmega`` in e3nn's basis.

    Shape:
        returns ``[2*l1+1, 2*l2+1, 2*l3+1]`` float64; all zeros unless ``is_odd_path(l1, l2, l3)``.

    Example:
        >>> import math
        >>> h = odd_product_coefficients(1, 1, 1)  # r . (a x b): the cross product, times 3/(4 pi)
        >>> round(float(h[0, 1, 2]) / math.sqrt(3 / (4 * math.pi)), 12)
        1.0
    """
    check_degrees(l1=l1, l2=l2, l3=l3)
    return _odd_coefficients(l1, l2, l3).clone()
