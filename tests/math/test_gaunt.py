import itertools
import math

import pytest
import torch
from e3nn import o3

from gaunt_tp.math import gaunt, is_gaunt_path, real_spherical_harmonics
from gaunt_tp.testing import gaunt_path_constant

FOUR_PI = 4 * math.pi


def test_closed_form_low_degrees():
    assert math.isclose(float(gaunt(0, 0, 0)[0, 0, 0]), 1 / math.sqrt(FOUR_PI), rel_tol=1e-14)
    for l in range(4):  # Y_00 times Y_lm projects onto itself / sqrt(4 pi)
        expected = torch.eye(2 * l + 1, dtype=torch.float64) / math.sqrt(FOUR_PI)
        torch.testing.assert_close(gaunt(l, l, 0)[:, :, 0], expected, rtol=0, atol=1e-15)
        torch.testing.assert_close(gaunt(0, l, l)[0], expected, rtol=0, atol=1e-15)
    g = gaunt(1, 1, 2)
    # components (x, y, z) = m (-1, 0, 1); Y_20 = sqrt(5/(16 pi)) (3 y^2 - 1) on e3nn's polar axis y
    assert math.isclose(float(g[1, 1, 2]), 1 / math.sqrt(5 * math.pi), rel_tol=1e-13)  # y y -> Y_20
    assert math.isclose(float(g[0, 0, 2]), -1 / (2 * math.sqrt(5 * math.pi)), rel_tol=1e-13)  # x x -> Y_20
    # Y_22 ~ sqrt(15/(16 pi)) (z^2 - x^2)
    assert math.isclose(float(g[2, 2, 4]), math.sqrt(3 / (20 * math.pi)), rel_tol=1e-13)
    assert math.isclose(float(g[0, 0, 4]), -math.sqrt(3 / (20 * math.pi)), rel_tol=1e-13)
    assert float(g[0, 1, 2]) == 0.0


@pytest.mark.parametrize("l1,l2,l3", [p for p in itertools.product(range(5), repeat=3)])
def test_proportional_to_e3nn_three_j_with_closed_form_constant(l1, l2, l3):
    g = gaunt(l1, l2, l3)
    assert g.shape == (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1)
    if not is_gaunt_path(l1, l2, l3):
        assert torch.count_nonzero(g) == 0
        return
    w3j = o3.wigner_3j(l1, l2, l3, dtype=torch.float64)
    c = gaunt_path_constant(l1, l2, l3)
    assert c > 0
    err = min((g - c * w3j).abs().max(), (g + c * w3j).abs().max())
    assert err < 1e-13


def test_odd_paths_vanish_where_cg_does_not():
    for l1, l2, l3 in [(1, 1, 1), (2, 1, 2), (3, 2, 2), (2, 2, 1)]:
        assert torch.count_nonzero(o3.wigner_3j(l1, l2, l3)) > 0
        assert torch.count_nonzero(gaunt(l1, l2, l3)) == 0


def test_equals_independent_lebedev_quadrature_on_a_rotated_grid():
    # SciPy's Lebedev rule (exact to degree 17), randomly rotated: shares no code with gaunt_tp's grids
    from scipy.integrate import lebedev_rule

    points, weights = lebedev_rule(17)
    pts = torch.from_numpy(points.T.copy()) @ o3.rand_matrix(dtype=torch.float64).T
    w = torch.from_numpy(weights.copy())
    y = o3.spherical_harmonics(list(range(5)), pts, normalize=False, normalization="integral")
    for l1, l2, l3 in [(1, 1, 2), (2, 2, 2), (3, 2, 1), (3, 3, 2), (4, 4, 4), (4, 3, 3)]:
        s = lambda l: y[:, l * l : (l + 1) ** 2]  # noqa: E731
        ref = torch.einsum("p,pi,pj,pk->ijk", w, s(l1), s(l2), s(l3))
        torch.testing.assert_close(gaunt(l1, l2, l3), ref, rtol=0, atol=1e-13)


def test_symmetric_under_exchange_and_returns_copies():
    torch.testing.assert_close(gaunt(2, 3, 1), gaunt(3, 2, 1).transpose(0, 1), rtol=0, atol=1e-15)
    torch.testing.assert_close(gaunt(2, 3, 1), gaunt(1, 3, 2).permute(2, 1, 0), rtol=0, atol=1e-15)
    g = gaunt(1, 1, 0)
    g.zero_()
    assert torch.count_nonzero(gaunt(1, 1, 0)) == 3


def test_bad_degree_is_an_error():
    with pytest.raises(ValueError, match="l2"):
        gaunt(1, -1, 1)
    with pytest.raises(ValueError, match="l1"):
        gaunt(1.5, 1, 1)  # type: ignore[arg-type]


def test_gaunt_is_the_integral_of_products_of_sampled_harmonics():
    """The product of two harmonics, re-expanded with the Gaunt coefficients, matches pointwise
    on its band (f g is a combination of Y_l3 with l3 <= l1 + l2)."""
    theta = torch.rand(50, dtype=torch.float64) * math.pi
    phi = torch.rand(50, dtype=torch.float64) * 2 * math.pi
    y = real_spherical_harmonics(4, theta, phi)
    y1, y2 = y[:, 1:4], y[:, 4:9]  # l = 1, 2
    prod = torch.einsum("pi,pj->pij", y1, y2)
    recon = sum(torch.einsum("ijk,pk->pij", gaunt(1, 2, l3), y[:, l3 * l3 : (l3 + 1) ** 2]) for l3 in (1, 3))
    torch.testing.assert_close(recon, prod, rtol=0, atol=1e-13)
