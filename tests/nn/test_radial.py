"""The radial basis and the cutoff envelope against their closed forms and boundary conditions."""

import math

import pytest
import torch

from gaunt_tp.nn.radial import BesselBasis, PolynomialCutoff


@pytest.mark.parametrize("p", [2, 5, 6])
def test_cutoff_is_the_polynomial_with_flat_ends(p):
    r_max = 4.5
    r = torch.linspace(0.0, 5.5, 2001, dtype=torch.float64, requires_grad=True)
    got = PolynomialCutoff(r_max, p)(r)
    x = r.detach() / r_max
    want = 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
    torch.testing.assert_close(got.detach(), want * (x < 1), rtol=0, atol=1e-13)
    (first,) = torch.autograd.grad(got.sum(), r, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), r)
    end = torch.tensor([r_max], dtype=torch.float64, requires_grad=True)
    value = PolynomialCutoff(r_max, p)(end * (1 - 1e-12))  # just inside: the polynomial's own derivatives
    (d1,) = torch.autograd.grad(value.sum(), end, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), end)
    assert float(got[0]) == pytest.approx(1.0, abs=1e-15)
    assert abs(float(value)) < 1e-9 and abs(float(d1)) < 1e-9 and abs(float(d2)) < 1e-6
    assert float(first[x >= 1].abs().max()) == 0.0 and float(second[x >= 1].abs().max()) == 0.0


def test_bessel_basis_is_the_sine_over_r_with_its_limit_at_zero():
    r_max, n = 5.0, 8
    r = torch.tensor([0.0, 1e-9, 0.3, 1.7, 4.99], dtype=torch.float64)
    got = BesselBasis(r_max, n)(r)
    k = torch.arange(1, n + 1, dtype=torch.float64) * math.pi / r_max
    want = math.sqrt(2 / r_max) * torch.sin(k * r[1:, None]) / r[1:, None]
    torch.testing.assert_close(got[1:], want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[0], math.sqrt(2 / r_max) * k, rtol=1e-12, atol=0)
    x = torch.tensor([0.0, 0.8], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(BesselBasis(r_max, n)(x).sum(), x)
    assert torch.isfinite(g).all()  # no NaN from the r = 0 branch
