import math

import torch
from e3nn import o3

from gaunt_tp.math import real_spherical_harmonics, unit_vectors

f64 = torch.float64


def test_l1_components_are_xyz_and_normalised():
    vec = torch.randn(20, 3, dtype=f64)
    vec = vec / vec.norm(dim=-1, keepdim=True)
    y = o3.spherical_harmonics(1, vec, normalize=False, normalization="integral")
    torch.testing.assert_close(y, math.sqrt(3 / (4 * math.pi)) * vec, rtol=0, atol=1e-14)


def test_polar_axis_is_y():
    theta = torch.rand(30, dtype=f64) * math.pi
    phi1, phi2 = (torch.rand(30, dtype=f64) * 2 * math.pi for _ in range(2))
    y1 = real_spherical_harmonics(4, theta, phi1)
    y2 = real_spherical_harmonics(4, theta, phi2)
    m0 = [l * l + l for l in range(5)]  # m = 0 entries depend on theta only
    torch.testing.assert_close(y1[:, m0], y2[:, m0], rtol=0, atol=1e-13)
    v = unit_vectors(theta, phi1)
    torch.testing.assert_close(v[:, 1], torch.cos(theta), rtol=0, atol=1e-15)


def test_orders_are_cos_for_positive_and_sin_for_negative_m():
    """Y_lm(theta, phi) = Lambda(theta) cos(m phi) for m > 0 and Lambda(theta) sin(|m| phi) for m < 0."""
    lmax = 5
    theta = torch.rand(7, dtype=f64) * math.pi
    phi = torch.rand(11, dtype=f64) * 2 * math.pi
    y = real_spherical_harmonics(lmax, theta[:, None], phi[None, :])  # [7, 11, dim]
    y0 = real_spherical_harmonics(lmax, theta, torch.zeros_like(theta))
    yq = real_spherical_harmonics(lmax, theta, torch.full_like(theta, math.pi / 2))
    for l in range(lmax + 1):
        for m in range(1, l + 1):
            cos_part = y0[:, l * l + l + m][:, None] * torch.cos(m * phi)[None, :]
            torch.testing.assert_close(y[:, :, l * l + l + m], cos_part, rtol=0, atol=1e-13)
            # sin(|m| pi/2) = +-1 or 0: use a phase where it is non-zero
            phase = math.pi / (2 * m)
            ys = real_spherical_harmonics(lmax, theta, torch.full_like(theta, phase))[:, l * l + l - m]
            sin_part = ys[:, None] * torch.sin(m * phi)[None, :]
            torch.testing.assert_close(y[:, :, l * l + l - m], sin_part, rtol=0, atol=1e-13)
    assert yq.shape == (7, (lmax + 1) ** 2)


def test_harmonics_are_orthonormal_under_dense_quadrature():
    # independent of gaunt_tp's own grids: a fine midpoint rule in cos(theta) and phi
    n = 400
    ct = (torch.arange(n, dtype=f64) + 0.5) / n * 2 - 1
    phi = (torch.arange(2 * n, dtype=f64) + 0.5) / (2 * n) * 2 * math.pi
    theta = torch.acos(ct)
    y = real_spherical_harmonics(3, theta[:, None], phi[None, :]).reshape(-1, 16)
    gram = y.T @ y * (2 / n) * (2 * math.pi / (2 * n))
    torch.testing.assert_close(gram, torch.eye(16, dtype=f64), rtol=0, atol=1e-4)


def test_harmonic_power_table_gives_e3nn_harmonics_of_any_vector():
    from gaunt_tp.math.conventions import harmonic_power_table

    vec = torch.cat([torch.randn(30, 3, dtype=f64) * 2, torch.zeros(1, 3, dtype=f64)])  # off the sphere, and zero
    for lmax in range(5):
        powers = [torch.ones(len(vec), 1, dtype=f64)]
        for _ in range(lmax):
            powers.append((powers[-1][:, :, None] * vec[:, None, :]).reshape(len(vec), -1))
        table = harmonic_power_table(lmax)
        assert table.shape == (sum(3**l for l in range(lmax + 1)), (lmax + 1) ** 2)
        expected = o3.spherical_harmonics(list(range(lmax + 1)), vec, normalize=False, normalization="integral")
        err = (torch.cat(powers, 1) @ table - expected).abs().max() / expected.abs().max()
        assert err < 1e-13, (lmax, err)
