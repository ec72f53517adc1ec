"""Exact change of basis between real spherical harmonics and the 2D Fourier basis.

On the torus of angles (theta, phi) of :mod:`gaunt_tp.math.conventions` (theta
from e3nn's polar axis y), every harmonic of degree l is a trigonometric
polynomial of degree <= l in each angle::

    Y_lm(theta, phi) = sum_{u, v = -l..l} E[lm, u, v] exp(i (u theta + v phi))

and only ``v = +-m`` occur. The reverse map takes the Fourier coefficients
``h[u, v]`` of any function on the torus to the coefficients of its restriction
to the sphere, ``z_lm = integral h Y_lm dOmega``, using the exact integral
``integral_0^pi exp(i k theta) sin(theta) dtheta``.

Index conventions: frequency ``u`` (or ``v``) in ``-K..K`` is stored at position
``u + K`` (centred, like ``numpy.fft.fftshift`` of an odd-length transform).
"""

from __future__ import annotations

import functools
import math

import torch

from gaunt_tp.math.conventions import real_spherical_harmonics

__all__ = ["sh_to_fourier", "fourier_to_sh", "sin_theta_integral"]


@functools.cache
def _sh_to_fourier(lmax: int) -> torch.Tensor:
    n = 2 * lmax + 1
    angles = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    theta, phi = torch.meshgrid(angles, angles, indexing="ij")
    samples = real_spherical_harmonics(lmax, theta, phi)  # [n, n, dim]
    # Band-limited samples: the DFT returns the Fourier coefficients exactly.
    coeffs = torch.fft.fft2(samples.permute(2, 0, 1), norm="forward")
    coeffs = torch.fft.fftshift(coeffs, dim=(-2, -1))
    coeffs.real[coeffs.real.abs() < 1e-15] = 0.0
    coeffs.imag[coeffs.imag.abs() < 1e-15] = 0.0
    return coeffs


def sh_to_fourier(lmax: int) -> torch.Tensor:
    """Fourier coefficients of e3nn's real harmonics of degrees ``0..lmax``.

    Shape:
        returns ``E`` of shape ``[(lmax+1)**2, 2*lmax+1, 2*lmax+1]``, complex128,
        indexed ``E[lm, u + lmax, v + lmax]``.

    Example:
        >>> import math
        >>> E = sh_to_fourier(1)
        >>> round(float(E[0, 1, 1].real) * math.sqrt(4 * math.pi), 12)  # Y_00 is constant
        1.0
    """
    if not isinstance(lmax, int) or lmax < 0:
        raise ValueError(f"lmax must be a non-negative int, got {lmax!r}")
    return _sh_to_fourier(lmax).clone()


def sin_theta_integral(k: torch.Tensor) -> torch.Tensor:
    """``integral_0^pi exp(i k theta) sin(theta) dtheta`` for integer ``k``.

    Equals ``(1 + (-1)**k) / (1 - k**2)`` for ``|k| != 1`` and ``i pi k / 2`` for
    ``k = +-1``.

    Shape:
        ``k`` any shape of integers; returns complex128 of the same shape.

    Example:
        >>> [complex(round(v.real, 4), round(v.imag, 4)) for v in sin_theta_integral(torch.tensor([0, 1, 2])).tolist()]
        [(2+0j), 1.5708j, (-0.6667+0j)]
    """
    k = k.to(torch.float64)
    one = k.abs() == 1
    real = torch.where(
        one, torch.zeros_like(k), (1 + torch.cos(math.pi * k)) / torch.where(one, torch.ones_like(k), 1 - k**2)
    )
    imag = torch.where(one, math.pi * k / 2, torch.zeros_like(k))
    return torch.complex(real, imag)


@functools.cache
def _fourier_to_sh(band: int, lmax: int) -> torch.Tensor:
    e = _sh_to_fourier(lmax)  # [dim, 2lmax+1 (u'), 2lmax+1 (v')]
    u = torch.arange(-band, band + 1)
    up = torch.arange(-lmax, lmax + 1)
    integral = sin_theta_integral(u[:, None] + up[None, :])  # [2band+1 (u), 2lmax+1 (u')]
    # z_lm = sum_{u,v} h[u, v] * 2 pi * sum_{u'} E[lm, u', -v] * I(u + u')
    e_flipped = torch.flip(e, dims=(-1,))  # index v + lmax now holds E[..., -v]
    out = 2 * math.pi * torch.einsum("au,iuv->iav", integral.to(e.dtype), e_flipped)
    out.real[out.real.abs() < 1e-15] = 0.0
    out.imag[out.imag.abs() < 1e-15] = 0.0
    return out


def fourier_to_sh(band: int, lmax: int) -> torch.Tensor:
    """Projection of a function's 2D Fourier coefficients onto harmonics up to ``lmax``.

    For ``h(theta, phi) = sum_{|u| <= band, |v| <= lmax} h[u, v] exp(i (u theta + v phi))``
    (frequencies ``|v| > lmax`` do not reach degrees <= lmax and are left out),
    ``z_lm = integral_{S^2} h Y_lm dOmega = sum_{u,v} W[lm, u, v] h[u, v]``.

    Shape:
        returns ``W`` of shape ``[(lmax+1)**2, 2*band+1, 2*lmax+1]``, complex128,
        indexed ``W[lm, u + band, v + lmax]``.

    Example:
        >>> import math
        >>> W = fourier_to_sh(0, 0)  # a constant 1 projects onto Y_00 as sqrt(4 pi)
        >>> round(float(W[0, 0, 0].real), 12) == round(math.sqrt(4 * math.pi), 12)
        True
    """
    if not isinstance(band, int) or band < 0 or not isinstance(lmax, int) or lmax < 0:
        raise ValueError(f"band and lmax must be non-negative ints, got {band!r}, {lmax!r}")
    return _fourier_to_sh(band, lmax).clone()
