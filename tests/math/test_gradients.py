import itertools
import math

import pytest
import torch
from e3nn import o3

from gaunt_tp.math import harmonic_gradients, is_odd_path, odd_product_coefficients


def test_gradients_match_finite_differences():
    pts = torch.randn(6, 3, dtype=torch.float64)
    grads = harmonic_gradients(4, pts)
    eps = 1e-6
    for k in range(3):
        step = torch.zeros(3, dtype=torch.float64)
        step[k] = eps
        plus = o3.spherical_harmonics(list(range(5)), pts + step, normalize=False, normalization="integral")
        minus = o3.spherical_harmonics(list(range(5)), pts - step, normalize=False, normalization="integral")
        torch.testing.assert_close(grads[..., k], (plus - minus) / (2 * eps), rtol=0, atol=1e-7)


def test_cross_product_closed_form():
    # f = sqrt(3/4pi) x.r, g = sqrt(3/4pi) y.r: r.(grad f x grad g) = (3/4pi) r.(x cross y),
    # whose l = 1 coefficients are sqrt(3/4pi) (x cross y)
    h = odd_product_coefficients(1, 1, 1)
    x, y = torch.randn(2, 3, dtype=torch.float64)
    z = torch.einsum("ijk,i,j->k", h, x, y)
    torch.testing.assert_close(z, math.sqrt(3 / (4 * math.pi)) * torch.linalg.cross(x, y), rtol=0, atol=1e-14)


@pytest.mark.parametrize("l1,l2,l3", list(itertools.product(range(5), repeat=3)))
def test_odd_coefficients_are_a_constant_times_e3nn_three_j(l1, l2, l3):
    h = odd_product_coefficients(l1, l2, l3)
    if not is_odd_path(l1, l2, l3):
        assert torch.count_nonzero(h) == 0
        return
    w3j = o3.wigner_3j(l1, l2, l3, dtype=torch.float64)
    c = float((h * w3j).sum())
    assert abs(c) > 1e-3  # every odd path is reached
    torch.testing.assert_close(h, c * w3j, rtol=0, atol=1e-13)


def test_antisymmetric_under_exchange():
    torch.testing.assert_close(
        odd_product_coefficients(2, 3, 2), -odd_product_coefficients(3, 2, 2).transpose(0, 1), rtol=0, atol=1e-14
    )
