import pytest
import torch

from gaunt_tp import GauntTensorProduct
from gaunt_tp.nn import GauntManyBody
from gaunt_tp.ops.native import native_error
from gaunt_tp.testing import assert_equivariant, natural_irreps

needs_kernels = pytest.mark.skipif(native_error() is not None, reason="no C compiler here (or GAUNT_TP_NATIVE=0)")


def per_degree(x: torch.Tensor, irreps: str, scale: torch.Tensor) -> torch.Tensor:
    """Multiply irrep i, channel c of e3nn-layout features x [N, dim] by scale[:, i, c]."""
    from e3nn import o3

    irreps = o3.Irreps(irreps)
    out = []
    for i, ((mul, ir), sl) in enumerate(zip(irreps, irreps.slices())):
        block = x[:, sl].view(-1, mul, ir.dim) * scale[:, i, :, None]
        out.append(block.reshape(x.shape[0], -1))
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("factor_weights", [False, True])
def test_equals_chained_dense_gaunt_products(factor_weights):
    c, lmax_in = 3, 2
    irreps_in, irreps_out = natural_irreps(lmax_in, c), natural_irreps(2, c)
    mb = GauntManyBody(irreps_in, irreps_out, correlation=3, num_elements=2, factor_weights=factor_weights).double()
    with torch.no_grad():
        if mb.factor is not None:
            mb.factor.normal_()
    species = torch.tensor([0, 1, 1, 0])
    a = torch.randn(4, mb.irreps_in.dim, dtype=torch.float64)
    full = natural_irreps(2 * lmax_in, c)
    square = GauntTensorProduct(irreps_in, irreps_in, full, backend="dense")
    cube = GauntTensorProduct(full, irreps_in, irreps_out, backend="dense")
    square_out = GauntTensorProduct(irreps_in, irreps_in, irreps_out, backend="dense")
    ones = torch.ones(4, len(mb.irreps_in), c, dtype=torch.float64)
    u = mb.factor[species] if mb.factor is not None else ones[:, None].expand(4, 3, -1, -1)
    f = [per_degree(a, irreps_in, u[:, k]) for k in range(3)]
    terms = [f[0][:, : mb.irreps_out.dim], square_out(f[0], f[1]), cube(square(f[0], f[1]), f[2])]
    w = mb.weights[species] * mb.tables.get(torch.float64, a.device)["norm"][None, :, :, None]  # [N, nu, n_out, C]
    expected = sum(per_degree(terms[k], irreps_out, w[:, k]) for k in range(3))
    torch.testing.assert_close(mb(a, species), expected, rtol=0, atol=1e-12)


def test_num_products_sums_independent_products():
    irreps_in, irreps_out = natural_irreps(2, 3), natural_irreps(2, 3)
    mb = GauntManyBody(irreps_in, irreps_out, correlation=3, num_elements=2, num_products=3).double()
    singles = [GauntManyBody(irreps_in, irreps_out, correlation=3, num_elements=2).double() for _ in range(3)]
    with torch.no_grad():
        mb.factor.normal_()
        for q, single in enumerate(singles):
            single.factor.copy_(mb.factor[:, 3 * q : 3 * q + 3])
            single.weights.copy_(mb.weights[:, 3 * q : 3 * q + 3])
    species = torch.tensor([0, 1, 1, 0, 1])
    a = torch.randn(5, mb.irreps_in.dim, dtype=torch.float64)
    expected = sum(single(a, species) for single in singles)
    torch.testing.assert_close(mb(a, species), expected, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="factor_weights"):
        GauntManyBody(irreps_in, irreps_out, correlation=3, num_elements=2, num_products=2, factor_weights=False)
    with pytest.raises(ValueError, match="num_products"):
        GauntManyBody(irreps_in, irreps_out, correlation=3, num_elements=2, num_products=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("correlation", [1, 2, 4])
@pytest.mark.parametrize("num_products", [1, 2])
def test_equivariant(dtype, correlation, num_products):
    mb = GauntManyBody(
        natural_irreps(2, 4), natural_irreps(2, 4), correlation=correlation, num_elements=3, num_products=num_products
    ).to(dtype)
    with torch.no_grad():
        mb.factor.normal_()  # distinct products
    species = torch.tensor([0, 2, 1, 1, 0, 2, 2, 0])
    err = assert_equivariant(lambda a: mb(a, species), [mb.irreps_in], mb.irreps_out, dtype=dtype)
    assert err < (1e-12 if dtype == torch.float64 else 1e-5)


def test_each_body_order_has_unit_second_moment():
    mb = GauntManyBody(
        natural_irreps(3, 16), natural_irreps(2, 16), correlation=3, num_elements=1, factor_weights=False
    )
    a, species = torch.randn(2000, mb.irreps_in.dim), torch.zeros(2000, dtype=torch.long)
    for nu in range(3):
        with torch.no_grad():
            mb.weights.zero_()
            mb.weights[:, nu] = 1.0
            z = mb(a, species)
        for sl in mb.irreps_out.slices():
            assert 0.75 < float(z[:, sl].square().mean()) < 1.33, nu


@pytest.mark.parametrize("num_products", [1, 2])
def test_gradcheck_and_gradgradcheck(num_products):
    mb = GauntManyBody(
        natural_irreps(1, 2), natural_irreps(1, 2), correlation=3, num_elements=2, num_products=num_products
    ).double()
    with torch.no_grad():
        mb.factor.normal_()
    species = torch.tensor([1, 0, 1])
    a = torch.randn(3, mb.irreps_in.dim, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: mb(x, species), (a,))
    assert torch.autograd.gradgradcheck(lambda x: mb(x, species), (a,))


def test_bad_inputs():
    mb = GauntManyBody(natural_irreps(1, 2), natural_irreps(1, 2), correlation=2, num_elements=2)
    with pytest.raises(ValueError, match="outside 0..1"):
        mb(torch.randn(3, 8), torch.tensor([0, 2, 1]))
    with pytest.raises(ValueError, match="species"):
        mb(torch.randn(3, 8), torch.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="node_features"):
        mb(torch.randn(3, 7), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="natural parity"):
        GauntManyBody("2x0e + 2x1e", "2x0e", correlation=2, num_elements=1)
    with pytest.raises(ValueError, match="correlation"):
        GauntManyBody("2x0e", "2x0e", correlation=0, num_elements=1)
    with pytest.raises(ValueError, match="exceed"):
        GauntManyBody("2x0e + 2x1o", "2x0e + 2x3o", correlation=2, num_elements=1)


@pytest.mark.parametrize("use_kernel", [pytest.param(True, marks=needs_kernels), False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_an_output_degree_that_some_body_orders_cannot_reach(use_kernel, dtype):
    """From 1o alone, nu = 1 has no 0e part and nu = 2 no 1o part: those terms are left out (weight 0), not their
    rounding noise scaled up by 1e12 (equivariant to the usual tolerance; the output does not move when their
    weights do); an output irrep that no body order reaches is refused."""
    mb = GauntManyBody("4x1o", "4x0e + 4x1o", correlation=2, num_elements=1).to(dtype)
    mb.use_kernel = use_kernel
    species = torch.zeros(8, dtype=torch.long)
    err = assert_equivariant(lambda a: mb(a, species), [mb.irreps_in], mb.irreps_out, dtype=dtype)
    assert err < (1e-12 if dtype == torch.float64 else 1e-5)
    a = torch.randn(8, mb.irreps_in.dim, dtype=dtype)
    before = mb(a, species)
    with torch.no_grad():
        mb.weights[:, 0, 0] += 100.0  # nu = 1 -> 0e
        mb.weights[:, 1, 1] += 100.0  # nu = 2 -> 1o
    assert torch.equal(mb(a, species), before)
    assert before.abs().max() < 50  # of order one for unit inputs
    with pytest.raises(ValueError, match=r"no product of up to 3 of 4x0e\+4x2e has the output irreps \['1o'\]"):
        GauntManyBody("4x0e + 4x2e", "4x0e + 4x1o", correlation=3, num_elements=1)


@pytest.mark.parametrize("use_kernel", [True, False])
def test_torch_compile_gives_the_eager_values_and_gradients(use_kernel):
    if use_kernel and native_error() is not None:
        pytest.skip("no C compiler here")
    mb = GauntManyBody(natural_irreps(2, 4), natural_irreps(1, 4), correlation=3, num_elements=2).double()
    mb.use_kernel = use_kernel
    x = torch.randn(5, mb.irreps_in.dim, dtype=torch.float64, requires_grad=True)
    species = torch.tensor([0, 1, 0, 1, 1])
    compiled = torch.compile(mb, fullgraph=False)
    (want,) = torch.autograd.grad(mb(x, species).square().sum(), x)
    (got,) = torch.autograd.grad(compiled(x, species).square().sum(), x)
    torch.testing.assert_close(compiled(x, species), mb(x, species), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
