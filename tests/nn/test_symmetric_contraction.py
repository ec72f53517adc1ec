"""SymmetricContraction: MACE's many-body function space as sparse polynomials; its C kernels."""

import pytest
import torch

from gaunt_tp.math.symmetric_powers import equivariant_polynomials, monomials
from gaunt_tp.nn import SymmetricContraction
from gaunt_tp.ops.many_body_kernel import symmetric_products
from gaunt_tp.ops.native import native_error
from gaunt_tp.testing import assert_equivariant, block_derivatives, natural_irreps

needs_kernels = pytest.mark.skipif(native_error() is not None, reason="no C compiler here")
# (lmax_in, lmax_out, channels, correlation): channel counts below, at and above one vector register
CASES = [(3, 1, 20, 3), (2, 2, 5, 2), (1, 1, 3, 3), (2, 0, 17, 1)]


def module(case, weights_on: str = "chains") -> SymmetricContraction:
    lmax_in, lmax_out, c, nu = case
    sc = SymmetricContraction(natural_irreps(lmax_in, c), natural_irreps(lmax_out, c), correlation=nu, num_elements=3,
                              weights_on=weights_on)  # fmt: skip
    with torch.no_grad():
        parameter(sc).normal_(generator=torch.Generator().manual_seed(0))
    return sc.double()


def parameter(sc: SymmetricContraction) -> torch.nn.Parameter:
    (p,) = sc.parameters()  # chain_weights or weights
    return p


@pytest.mark.parametrize("use_kernel", [False, pytest.param(True, marks=needs_kernels)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_equivariant(use_kernel, dtype):
    sc = module(CASES[0]).to(dtype)
    sc.use_kernel = use_kernel
    species = torch.tensor([0, 2, 1, 1, 0, 2, 2, 1])
    assert_equivariant(lambda x: sc(x, species), [sc.irreps_in], sc.irreps_out, dtype=dtype)


@pytest.mark.parametrize("irreps", [("4x0e + 4x1o", "4x0e + 4x1o + 4x2e"), ("4x1o", "4x0e + 4x1o")])
def test_outputs_that_some_body_orders_do_not_reach(irreps):
    """MACE's chain weights where an (output, nu) pair has no coupling chain (2e at nu = 1 from 0e + 1o; 0e at
    nu = 1 and 1o at nu = 2 from 1o alone): that body order is skipped, the block built and equivariant."""
    sc = SymmetricContraction(*irreps, correlation=2, num_elements=1).double()
    species = torch.zeros(8, dtype=torch.long)  # assert_equivariant's batch
    assert_equivariant(lambda x: sc(x, species), [sc.irreps_in], sc.irreps_out)
    assert sc(torch.randn(8, sc.irreps_in.dim, dtype=torch.float64), species).abs().amax() > 0


def test_equals_the_basis_polynomials_weighted():
    """An independent evaluation: dense monomials times the basis tables, weighted per path, in e3nn layout."""
    lmax_in, lmax_out, c, nu = CASES[0]
    sc = module(CASES[0], "basis")
    sc.use_kernel = False
    x = torch.randn(6, sc.irreps_in.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    species = torch.tensor([0, 1, 2, 2, 1, 0])
    got = sc(x, species)
    degrees = list(range(lmax_in + 1))
    a = torch.cat([x[:, sl].view(6, c, -1) for sl in sc.irreps_in.slices()], 2)  # [N, C, n]
    outputs = []
    for i, (_, ir) in enumerate(sc.irreps_out):
        paths = iter(sc.path_ranges[i])
        total = 0
        for k in range(1, nu + 1):
            basis = equivariant_polynomials(degrees, ir.l, k) * (2 * ir.l + 1) ** 0.5
            mono = a[..., monomials(a.shape[-1], k)].prod(-1)  # [N, C, m]
            values = torch.einsum("pMm,ncm->ncpM", basis, mono)
            w = sc.weights[species][:, [next(paths) for _ in range(basis.shape[0])]]  # [N, p, C]
            total = total + torch.einsum("ncpM,npc->ncM", values, w)
        outputs.append(total.reshape(6, -1))
    torch.testing.assert_close(got, torch.cat(outputs, 1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("weights_on", "low", "high"), [("basis", 0.5, 2.0), ("chains", 0.2, 5.0)])
def test_outputs_have_second_moment_of_order_one_at_initialisation(weights_on, low, high):
    """Unit second moment per component for unit inputs with basis weights; with MACE's chain weights what
    MACE's initialisation gives: per output irrep and degree nu, the second moments of mace-torch 0.3.16's
    contraction to within sampling noise (0e: 0.91 / 1.51 / 0.21 for nu = 1 / 2 / 3 there, 0.99 / 1.42 / 0.20
    here; 1o: 1.03 / 0.17 / 0.047 and 0.96 / 0.17 / 0.047; 12 initial weights, 32 channels, one-off)."""
    torch.manual_seed(0)
    sc = SymmetricContraction(natural_irreps(3, 32), natural_irreps(1, 32), correlation=3, num_elements=2,
                              weights_on=weights_on).double()  # fmt: skip
    x = torch.randn(400, sc.irreps_in.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = sc(x, torch.zeros(400, dtype=torch.int64))
    for sl in sc.irreps_out.slices():
        assert low < float(out[:, sl].square().mean()) < high


@needs_kernels
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_kernel_equals_pytorch_form(case):
    sc = module(case)
    x = torch.randn(7, sc.irreps_in.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x.requires_grad_(True)
    species = torch.tensor([0, 2, 1, 1, 0, 2, 2])
    for got, want in zip(block_derivatives(sc, x, species, True), block_derivatives(sc, x, species, False)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@needs_kernels
def test_kernel_float32_close_to_float64():
    sc = module(CASES[0])
    x = torch.randn(9, sc.irreps_in.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    species = torch.randint(0, 3, (9,), generator=torch.Generator().manual_seed(4))
    want = block_derivatives(sc, x.clone().requires_grad_(True), species, False)
    got = block_derivatives(sc.float(), x.float().requires_grad_(True), species, True)
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w, rtol=2e-4, atol=2e-4 * float(w.abs().max()))


@needs_kernels
def test_kernel_gradcheck_and_third_derivatives():
    sc = module(CASES[2])
    species = torch.tensor([0, 2, 1])
    x = torch.randn(3, sc.irreps_in.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    x.requires_grad_(True)
    t = sc.tables.get(torch.float64, torch.device("cpu"))
    w = torch.randn(3, sc.num_paths, sc.channels, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    w.requires_grad_(True)  # per-node path weights, what the kernels take
    f = lambda a, w: symmetric_products(  # noqa: E731
        a, w, sc.kernel_layout, sc.kernel_sizes, t["coefficient"], lambda a, w: sc._contract(a, w, t)
    )
    assert torch.autograd.gradcheck(f, (x, w))
    assert torch.autograd.gradgradcheck(f, (x, w))
    third = []
    for use_kernel in (True, False):
        sc.use_kernel = use_kernel
        (g,) = torch.autograd.grad(sc(x, species).square().sum(), [x], create_graph=True)
        (h,) = torch.autograd.grad(g.square().sum(), [x], create_graph=True)
        third.append(torch.autograd.grad(h.sin().sum(), [x, parameter(sc)]))
    for got, want in zip(*third):  # large values (~1e6): round-off relative to them
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10 * float(want.abs().max()))


class _FromRows(torch.nn.Module):
    """A rows-layout block with its output moved back to e3nn's layout, written out from the docstring."""

    def __init__(self, sc: SymmetricContraction) -> None:
        super().__init__()
        self.sc = sc

    def forward(self, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        self.sc.use_kernel = self.use_kernel
        out, parts, row = self.sc(x, species), [], 0  # [N, R, C]: row = component of the irreps in order
        for _, ir in self.sc.irreps_out:
            parts.append(out[:, row : row + ir.dim].transpose(1, 2).reshape(out.shape[0], -1))
            row += ir.dim
        return torch.cat(parts, dim=1)


@pytest.mark.parametrize("use_kernel", [False, pytest.param(True, marks=needs_kernels)])
def test_rows_output_is_the_e3nn_output_rearranged(use_kernel):
    """``out_layout="rows"``: ``[N, R, C]``, row r = component r of the irreps, column c = channel c; the same
    values and derivatives (to second order) as e3nn's layout, in the kernels and in PyTorch."""
    lmax_in, lmax_out, c, nu = case = CASES[1]
    e3nn_sc = module(case)
    rows_sc = SymmetricContraction(e3nn_sc.irreps_in, e3nn_sc.irreps_out, correlation=nu, num_elements=3,
                                   out_layout="rows").double()  # fmt: skip
    rows_sc.load_state_dict(e3nn_sc.state_dict())
    x = torch.randn(6, e3nn_sc.irreps_in.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    species = torch.tensor([0, 2, 1, 1, 0, 2])
    rows_sc.use_kernel = use_kernel
    assert rows_sc(x, species).shape == (6, e3nn_sc.irreps_out.dim // c, c)
    want = block_derivatives(e3nn_sc, x.clone().requires_grad_(True), species, use_kernel)
    got = block_derivatives(_FromRows(rows_sc), x.clone().requires_grad_(True), species, use_kernel)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="out_layout"):
        SymmetricContraction("4x0e", "4x0e", correlation=1, num_elements=1, out_layout="channels")


@pytest.mark.parametrize("use_kernel", [False, pytest.param(True, marks=needs_kernels)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rows_output_equivariant(use_kernel, dtype):
    sc = SymmetricContraction(natural_irreps(3, 20), natural_irreps(1, 20), correlation=3, num_elements=3,
                              out_layout="rows").to(dtype)  # fmt: skip
    block = _FromRows(sc)
    block.use_kernel = use_kernel
    species = torch.tensor([0, 2, 1, 1, 0, 2, 2, 1])
    err = assert_equivariant(lambda x: block(x, species), [sc.irreps_in], sc.irreps_out, dtype=dtype)
    assert err < (1e-12 if dtype == torch.float64 else 1e-5)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="natural parity"):
        SymmetricContraction("4x0e + 4x1e", "4x0e", correlation=2, num_elements=1)
    with pytest.raises(ValueError, match="multiplicity"):
        SymmetricContraction("4x0e + 4x1o", "3x0e", correlation=2, num_elements=1)
    with pytest.raises(ValueError, match="correlation"):
        SymmetricContraction("4x0e + 4x1o", "4x0e", correlation=0, num_elements=1)
    with pytest.raises(ValueError, match="reaches"):
        SymmetricContraction("4x0e", "4x1o", correlation=3, num_elements=1)
    sc = SymmetricContraction("4x0e + 4x1o", "4x0e", correlation=2, num_elements=2)
    with pytest.raises(ValueError, match="node_features"):
        sc(torch.randn(3, 5), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="element index 2"):
        sc(torch.randn(3, 16), torch.tensor([0, 1, 2]))


@pytest.mark.parametrize("use_kernel", [False, pytest.param(True, marks=needs_kernels)])
def test_chain_weights_are_basis_weights_through_the_chains(use_kernel):
    """``weights_on="chains"`` (MACE's parametrisation): the same block with path weights ``sum_k theta_k R[k, p]``."""
    from gaunt_tp.math.symmetric_powers import coupling_chains

    lmax_in, lmax_out, c, nu = CASES[0]
    chains = module(CASES[0], "chains")
    basis = module(CASES[0], "basis")
    chains.use_kernel = use_kernel
    degrees = list(range(lmax_in + 1))
    coords = torch.block_diag(
        *[coupling_chains(degrees, ir.l, k) / (2 * ir.l + 1) ** 0.5 for _, ir in basis.irreps_out for k in range(1, 4)]
    )
    with torch.no_grad():
        basis.weights.copy_(torch.einsum("zkc,kp->zpc", chains.chain_weights, coords))
    x = torch.randn(6, basis.irreps_in.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    species = torch.tensor([2, 1, 0, 0, 1, 2])
    torch.testing.assert_close(chains(x, species), basis(x, species), rtol=1e-12, atol=1e-12)
    eight = torch.tensor([0, 2, 1, 1, 0, 2, 2, 1])
    assert_equivariant(lambda x: chains(x, eight), [chains.irreps_in], chains.irreps_out)
    with pytest.raises(ValueError, match="weights_on"):
        SymmetricContraction("4x0e + 4x1o", "4x0e", correlation=2, num_elements=1, weights_on="paths")
