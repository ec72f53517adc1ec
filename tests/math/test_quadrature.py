import math

import pytest
import torch

from gaunt_tp.math import gauss_legendre_grid, real_spherical_harmonics


def _gram(band: int, lmax: int) -> torch.Tensor:
    grid = gauss_legendre_grid(band)
    theta, phi = grid.mesh()
    y = real_spherical_harmonics(lmax, theta.reshape(-1), phi.reshape(-1))
    return y.T @ (grid.weights.reshape(-1, 1) * y)


@pytest.mark.parametrize("band", [0, 1, 2, 5, 8, 13, 24])
def test_grid_integrates_products_up_to_its_band(band):
    lmax = band // 2
    gram = _gram(band, lmax)
    torch.testing.assert_close(gram, torch.eye((lmax + 1) ** 2, dtype=torch.float64), rtol=0, atol=1e-13)
    assert math.isclose(float(gauss_legendre_grid(band).weights.sum()), 4 * math.pi, rel_tol=1e-14)


@pytest.mark.parametrize("band", [4, 10])
def test_grid_is_not_exact_past_its_band(band):
    # the band is tight: Y_l0^2 with 2l = band + 2 is integrated wrongly
    lmax = band // 2 + 1
    gram = _gram(band, lmax)
    row = lmax * lmax + lmax
    assert abs(float(gram[row, row]) - 1.0) > 1e-3


def test_bad_band_is_an_error():
    with pytest.raises(ValueError, match="band"):
        gauss_legendre_grid(-1)
