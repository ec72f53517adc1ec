import math

import pytest
import torch

from gaunt_tp.math import fourier_to_sh, real_spherical_harmonics, sh_to_fourier, sin_theta_integral

f64 = torch.float64


def _evaluate(coeffs: torch.Tensor, theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """sum_{u,v} c[..., u, v] exp(i (u theta + v phi)) for centred coefficient arrays."""
    ku = (coeffs.shape[-2] - 1) // 2
    kv = (coeffs.shape[-1] - 1) // 2
    eu = torch.exp(1j * torch.arange(-ku, ku + 1, dtype=f64)[None, :] * theta[:, None])
    ev = torch.exp(1j * torch.arange(-kv, kv + 1, dtype=f64)[None, :] * phi[:, None])
    return torch.einsum("...uv,pu,pv->p...", coeffs, eu, ev)


@pytest.mark.parametrize("lmax", [0, 1, 3, 6])
def test_fourier_expansion_reproduces_harmonics_on_the_whole_torus(lmax):
    e = sh_to_fourier(lmax)
    theta = torch.rand(40, dtype=f64) * 4 * math.pi - math.pi  # beyond [0, pi] too
    phi = torch.rand(40, dtype=f64) * 2 * math.pi
    val = _evaluate(e, theta, phi)
    torch.testing.assert_close(val.real, real_spherical_harmonics(lmax, theta, phi), rtol=0, atol=1e-13)
    assert val.imag.abs().max() < 1e-13


def test_only_v_equal_plus_minus_m_occurs():
    lmax = 4
    e = sh_to_fourier(lmax)
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            nz = torch.nonzero(e[l * l + l + m].abs() > 1e-14)
            assert set((nz[:, 1] - lmax).abs().tolist()) == {abs(m)}
            assert (nz[:, 0] - lmax).abs().max() <= l


@pytest.mark.parametrize("lmax", [1, 4, 7])
def test_round_trip_sh_fourier_sh_is_identity(lmax):
    e = sh_to_fourier(lmax)
    for band in (lmax, lmax + 3):
        w = fourier_to_sh(band, lmax)
        pad = band - lmax
        e_pad = torch.nn.functional.pad(e, (0, 0, pad, pad))
        torch.testing.assert_close(
            torch.einsum("iuv,juv->ji", e_pad, w).real, torch.eye((lmax + 1) ** 2, dtype=f64), rtol=0, atol=1e-13
        )


def test_projection_of_a_product_matches_quadrature():
    # h = Y_a Y_b: its Fourier coefficients are the 2D convolution; projected, they are Gaunt coefficients
    from gaunt_tp.math import gaunt

    e = sh_to_fourier(2)
    ya, yb = e[2 * 2 + 2 + 1], e[1 * 1 + 1 - 1]  # Y_{2,1} and Y_{1,-1}
    conv = torch.zeros(9, 9, dtype=torch.complex128)  # frequencies -4..4: the product's band
    for u1 in range(5):
        for v1 in range(5):
            conv[u1 : u1 + 5, v1 : v1 + 5] += ya[u1, v1] * yb
    w = fourier_to_sh(4, 3)  # [16, 9 (u = -4..4), 7 (v = -3..3)]
    z = torch.einsum("iuv,uv->i", w, conv[:, 1:8]).real
    expected = torch.cat([gaunt(2, 1, l3)[3, 0] for l3 in range(4)])
    torch.testing.assert_close(z, expected, rtol=0, atol=1e-13)


def test_sin_theta_integral_matches_numerical_quadrature():
    k = torch.arange(-6, 7)
    n = 20000
    theta = (torch.arange(n, dtype=f64) + 0.5) * math.pi / n
    numeric = (torch.exp(1j * k[:, None].to(f64) * theta[None, :]) * torch.sin(theta)[None, :]).sum(-1) * math.pi / n
    torch.testing.assert_close(sin_theta_integral(k), numeric, rtol=0, atol=1e-8)


def test_bad_arguments():
    with pytest.raises(ValueError):
        sh_to_fourier(-1)
    with pytest.raises(ValueError):
        fourier_to_sh(2, -1)
