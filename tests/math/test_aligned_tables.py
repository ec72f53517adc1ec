import math

import torch
from e3nn import o3

from gaunt_tp.math import gaunt
from gaunt_tp.math.aligned import meridian_tables, quarter_turn


def test_quarter_turn_is_the_wigner_matrix_of_q():
    q = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(quarter_turn(1), q, rtol=0, atol=1e-15)
    points = torch.randn(20, 3, dtype=torch.float64)
    for l in range(7):
        y = o3.spherical_harmonics(l, points, normalize=True, normalization="integral")
        y_turned = o3.spherical_harmonics(l, points @ q.T, normalize=True, normalization="integral")
        torch.testing.assert_close(y @ quarter_turn(l).T, y_turned, rtol=0, atol=1e-13)


def test_gaunt_with_a_zonal_factor_is_diagonal_in_m():
    # e3nn orders m = -l..l, so m = 0 of degree l2 is index l2; G(l1 m, l2 0, l3 m') = 0 unless m' = m
    for l1, l2, l3 in [(1, 2, 3), (2, 2, 2), (3, 1, 2), (4, 4, 4), (2, 4, 4)]:
        block = gaunt(l1, l2, l3)[:, l2, :]
        lo = min(l1, l3)
        offdiag = block.clone()
        for m in range(-lo, lo + 1):
            offdiag[l1 + m, l3 + m] = 0.0
        assert offdiag.abs().max() == 0.0


def test_meridian_product_equals_m_diagonal_gaunt_product():
    ls_in, ls_sh, ls_out = (0, 1, 3), (0, 2, 3), (1, 2, 4, 0)
    t = meridian_tables(ls_in, ls_sh, ls_out)
    x = torch.randn(sum(2 * l + 1 for l in ls_in), dtype=torch.float64)
    r = torch.randn(len(ls_sh), dtype=torch.float64)
    f = torch.einsum("mk,mkq->mq", x[t.gather_in], t.evaluate)
    z = torch.einsum("mq,mqk->mk", f * (r @ t.zonal), t.project).reshape(-1)
    z = torch.cat([z, z.new_zeros(1)])[t.gather_out]
    expected, offsets = [], [0, 1, 4]
    for l3 in ls_out:
        acc = torch.zeros(2 * l3 + 1, dtype=torch.float64)
        for l1, o in zip(ls_in, offsets):
            for l2, weight in zip(ls_sh, r):
                # the zonal factor's only coefficient: R * Y_l2,0(y axis) = R * sqrt((2 l2 + 1) / (4 pi))
                zonal = weight * math.sqrt((2 * l2 + 1) / (4 * math.pi))
                acc += x[o : o + 2 * l1 + 1] @ gaunt(l1, l2, l3)[:, l2, :] * zonal
        expected.append(acc)
    torch.testing.assert_close(z, torch.cat(expected), rtol=0, atol=1e-14)


def test_zonal_coefficient_normalisation():
    # sum_m Y_lm(u) Y_lm(y) has, about y, only m = 0: Y_l0(y) = sqrt((2l+1)/(4 pi))
    y = o3.spherical_harmonics(
        list(range(5)), torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), normalize=True, normalization="integral"
    )
    for l in range(5):
        expected = torch.zeros(2 * l + 1, dtype=torch.float64)
        expected[l] = math.sqrt((2 * l + 1) / (4 * math.pi))
        torch.testing.assert_close(y[l * l : (l + 1) ** 2], expected, rtol=0, atol=1e-15)
