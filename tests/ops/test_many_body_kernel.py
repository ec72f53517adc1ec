"""GauntManyBody's C kernels: the same values and derivatives (to third order) as its PyTorch form."""

import pytest
import torch

from gaunt_tp.nn import GauntManyBody
from gaunt_tp.ops.many_body_kernel import many_body_products
from gaunt_tp.ops.native import native_error
from gaunt_tp.testing import block_derivatives, natural_irreps

pytestmark = pytest.mark.skipif(native_error() is not None, reason="no C compiler here")

# (lmax_in, lmax_out, channels, correlation, num_products, factor_weights): channel counts below, at and
# above one vector register (16 floats, 8 doubles) and not multiples of it
CASES = [
    (3, 1, 20, 3, 1, True),
    (2, 2, 5, 2, 2, True),
    (2, 1, 3, 3, 1, False),
    (1, 1, 8, 1, 3, True),
    (3, 0, 17, 3, 1, True),
]


def module(case) -> GauntManyBody:
    lmax_in, lmax_out, c, nu, k, factor_weights = case
    mb = GauntManyBody(natural_irreps(lmax_in, c), natural_irreps(lmax_out, c), correlation=nu, num_elements=3,
                       num_products=k, factor_weights=factor_weights).double()  # fmt: skip
    with torch.no_grad():  # away from the initial values (factors all one)
        for p in mb.parameters():
            p.normal_(generator=torch.Generator().manual_seed(p.numel()))
    return mb


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_kernel_equals_pytorch_form(case):
    mb = module(case)
    x = torch.randn(7, mb.irreps_in.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x.requires_grad_(True)
    species = torch.tensor([0, 2, 1, 1, 0, 2, 2])
    kernel, reference = block_derivatives(mb, x, species, True), block_derivatives(mb, x, species, False)
    for got, want in zip(kernel, reference):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_float32_kernel_equals_float64_reference():
    case = CASES[0]
    mb64 = module(case)
    mb32 = module(case).float()  # the same weights, rounded
    x = torch.randn(5, mb64.irreps_in.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    species = torch.tensor([0, 1, 2, 1, 0])
    mb64.use_kernel = False
    want = mb64(x, species)
    got = mb32(x.float(), species)
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


@pytest.mark.parametrize("case", CASES[:3], ids=[str(c) for c in CASES[:3]])
def test_derivatives_to_second_order_by_finite_differences(case):
    mb = module(case)
    species = torch.tensor([0, 2, 1])
    t = mb.tables.get(torch.float64, torch.device("cpu"))
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(3, mb.irreps_in.dim, dtype=torch.float64, generator=gen, requires_grad=True)
    w = mb.weights[species].detach().clone().requires_grad_(True)
    if mb.factor is None:
        args = (a, w)
        f = lambda a, w: many_body_products(a, None, w, mb.kernel_layout, t, mb._products)  # noqa: E731
    else:
        args = (a, mb.factor[species].detach().clone().requires_grad_(True), w)
        f = lambda a, u, w: many_body_products(a, u, w, mb.kernel_layout, t, mb._products)  # noqa: E731
    assert torch.autograd.gradcheck(f, args)
    assert torch.autograd.gradgradcheck(f, args)


def test_third_derivative_equals_pytorch_form():
    mb = module(CASES[1])
    species = torch.tensor([0, 1, 2])
    results = []
    for use_kernel in (True, False):
        mb.use_kernel = use_kernel
        x = 0.3 * torch.randn(3, mb.irreps_in.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
        x.requires_grad_(True)
        (g1,) = torch.autograd.grad(mb(x, species).square().sum(), x, create_graph=True)
        (g2,) = torch.autograd.grad(g1.square().sum(), x, create_graph=True)
        results.append(torch.autograd.grad(g2.sin().sum(), [x, mb.weights]))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9 * float(want.abs().max()))
