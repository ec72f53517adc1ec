"""The conventions every table in gaunt_tp is built in, written down once.

Spherical harmonics
    Real spherical harmonics exactly as e3nn's ``o3.spherical_harmonics`` with
    ``normalization="integral"``: orthonormal on the unit sphere,
    ``integral Y_lm Y_l'm' dOmega = delta_ll' delta_mm'``. Within degree ``l`` the
    ``2l+1`` components are ordered ``m = -l, ..., l``. A vector of all degrees
    ``0..lmax`` has ``(lmax+1)**2`` entries, degree ``l`` at offset ``l**2``.

Axes and angles
    e3nn orders the l=1 components as (x, y, z) so that its Wigner matrix of degree
    1 is the rotation matrix itself. The price is that **y is the polar axis**:
    the m=0 harmonics depend on y alone. Angles are measured from it::

        x = sin(theta) sin(phi),   y = cos(theta),   z = sin(theta) cos(phi)

    with theta in [0, pi] the polar angle from +y and phi the azimuth measured
    from +z towards +x. With these angles e3nn's Y_lm is proportional to
    ``P_l^|m|(cos theta) cos(m phi)`` for m > 0 and to
    ``P_l^|m|(cos theta) sin(|m| phi)`` for m < 0 (tests pin this).

2D Fourier basis
    The same formula defines a function of (theta, phi) on the whole torus
    [0, 2pi)^2. A harmonic of degree l is a homogeneous polynomial of degree l in
    (x, y, z), hence a trigonometric polynomial of degree <= l in theta and in phi:
    ``Y_lm(theta, phi) = sum_{u,v=-l..l} E[lm, u, v] exp(i (u theta + v phi))``.

Products
    ``gaunt(l1, l2, l3)[m1, m2, m3] = integral Y_l1m1 Y_l2m2 Y_l3m3 dOmega``. The
    Gaunt product of ``f = sum x_lm Y_lm`` and ``g = sum y_lm Y_lm`` has
    coefficients ``z_lm = integral f g Y_lm dOmega``.

Everything in ``gaunt_tp.math`` is computed in float64 on the CPU, cached, and
handed out as a fresh copy.
"""

from __future__ import annotations

import functools

import torch
from e3nn import o3

__all__ = ["harmonic_power_table", "real_spherical_harmonics", "sh_dim", "sh_offset", "unit_vectors", "vector_powers"]


def sh_dim(lmax: int) -> int:
    """Number of real harmonics of all degrees ``0..lmax``: ``(lmax+1)**2``."""
    return (lmax + 1) ** 2


def sh_offset(l: int) -> int:
    """Offset of degree ``l`` inside a vector of all degrees: ``l**2``."""
    return l * l


def unit_vectors(theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Points on the sphere for angles measured from e3nn's polar axis (y).

    Args:
        theta: polar angles, any shape ``[...]``.
        phi: azimuths, broadcastable with ``theta``.

    Shape:
        returns ``[..., 3]`` with components (x, y, z).

    Example:
        >>> import math, torch
        >>> unit_vectors(torch.tensor(0.0), torch.tensor(0.0))
        tensor([0., 1., 0.])
    """
    theta, phi = torch.broadcast_tensors(theta, phi)
    s = torch.sin(theta)
    return torch.stack([s * torch.sin(phi), torch.cos(theta), s * torch.cos(phi)], dim=-1)


def real_spherical_harmonics(lmax: int, theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """e3nn's orthonormal real harmonics of degrees ``0..lmax`` at angles (theta, phi).

    The angles need not lie in [0, pi] x [0, 2pi): the harmonics are evaluated at
    ``unit_vectors(theta, phi)``, which extends them to trigonometric polynomials
    on the torus (see the module docstring).

    Shape:
        theta, phi broadcastable to ``[...]``; returns ``[..., (lmax+1)**2]``.

    Example:
        >>> import math, torch
        >>> zero = torch.tensor(0.0, dtype=torch.float64)
        >>> y = real_spherical_harmonics(1, zero, zero)  # the +y axis
        >>> # Y_00 = 1/sqrt(4 pi), Y_1 = sqrt(3/(4 pi)) (x, y, z)
        >>> [round(v, 12) for v in (y * (4 * math.pi) ** 0.5).tolist()]
        [1.0, 0.0, 1.732050807569, 0.0]
    """
    vec = unit_vectors(theta, phi)
    return o3.spherical_harmonics(list(range(lmax + 1)), vec, normalize=False, normalization="integral")


@functools.cache
def _harmonic_power_table(lmax: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    blocks = []
    for l in range(lmax + 1):
        v = torch.randn(4 * 3**l + 16, 3, generator=gen, dtype=torch.float64)
        powers = vector_powers(v, l)[:, -(3**l) :]  # v^{⊗ l}
        y = o3.spherical_harmonics(l, v, normalize=False, normalization="integral")
        # the least-norm solution: coefficients symmetric in the l factors (the powers repeat each monomial)
        coefficients = torch.linalg.lstsq(powers, y, driver="gelsd").solution
        if (powers @ coefficients - y).abs().max() > 1e-10 * y.abs().max():
            raise ArithmeticError(f"the degree-{l} harmonics did not fit the tensor powers of their argument")
        blocks.append(coefficients)
    return torch.block_diag(*blocks)


def harmonic_power_table(lmax: int) -> torch.Tensor:
    """e3nn's harmonics of degrees ``0..lmax`` as linear functions of the tensor powers of their argument.

    ``o3.spherical_harmonics(list(range(lmax + 1)), v, normalize=False, normalization="integral")`` equals
    ``powers(v) @ harmonic_power_table(lmax)`` for every vector v, where ``powers(v)`` is
    ``(1, v, v ⊗ v, ..., v^{⊗ lmax})``, each power flattened row-major (``sum_l 3**l`` entries): a harmonic
    of degree l is a homogeneous polynomial of degree l, so a combination of the entries of ``v^{⊗ l}``.
    The coefficients are the least-norm ones (symmetric in the l factors), fitted exactly in float64.
    Evaluating the powers takes a few whole-array products, fewer operations (and backward operations)
    than e3nn's per-component formulas.

    Shape:
        returns ``[sum_{l <= lmax} 3**l, (lmax + 1)**2]`` float64, block-diagonal by degree.
    """
    if not isinstance(lmax, int) or lmax < 0:
        raise ValueError(f"lmax must be an int >= 0, got {lmax!r}")
    return _harmonic_power_table(lmax).clone()


def vector_powers(vectors: torch.Tensor, lmax: int) -> torch.Tensor:
    """``(1, v, v ⊗ v, ..., v^{⊗ lmax})`` per row, each power flattened row-major: the argument of
    :func:`harmonic_power_table`.

    Shape:
        ``[E, 3]`` -> ``[E, sum_{l <= lmax} 3**l]``.
    """
    e = vectors.shape[0]
    parts = [vectors.new_ones(e, 1)] + ([vectors] if lmax > 0 else [])
    for _ in range(lmax - 1):
        parts.append((parts[-1][:, :, None] * vectors[:, None, :]).flatten(1))  # flatten: also for E = 0
    return torch.cat(parts, dim=1)
