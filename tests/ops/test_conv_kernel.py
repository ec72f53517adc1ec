"""The grid convolution's C kernels: exact sums, derivatives of any order, and the module with and without them."""

import pytest
import torch

from gaunt_tp.ops import GauntConvolution, conv_kernel
from gaunt_tp.ops.conv_kernel import convolution_sums, scalar_sums
from gaunt_tp.ops.native import native_error
from gaunt_tp.testing import natural_irreps

pytestmark = pytest.mark.skipif(native_error() is not None, reason="no C compiler here")


def reference(x, r, z, sender, receiver, rows=None):
    per_edge = r if rows is None else r[rows]  # [E, L, C]
    messages = x[sender] * torch.bmm(per_edge.transpose(1, 2), z)
    return torch.zeros_like(x).index_add(0, receiver, messages)


@pytest.mark.parametrize("shared", [False, True], ids=["row-per-edge", "shared-rows"])
@pytest.mark.parametrize("degrees", [4, 3], ids=["L4", "L3"])  # L = 4 has its own code path
def test_sums_and_derivatives(degrees, shared):
    gen = torch.Generator().manual_seed(0)
    n, e, c, p = 6, 25, 3, 16
    rows = torch.randint(0, 9, (e,), generator=gen) if shared else None  # some rows shared, some unused
    x = torch.randn(n, c, p, dtype=torch.float64, generator=gen, requires_grad=True)
    r = torch.randn(9 if shared else e, degrees, c, dtype=torch.float64, generator=gen, requires_grad=True)
    z = torch.randn(e, degrees, p, dtype=torch.float64, generator=gen, requires_grad=True)
    sender, receiver = torch.randint(0, n, (2, e), generator=gen)
    receiver[:3] = 5  # a node with several edges, and (likely) nodes with none
    torch.testing.assert_close(
        convolution_sums(x, r, z, sender, receiver, rows),
        reference(x, r, z, sender, receiver, rows),
        rtol=0,
        atol=1e-12,
    )
    f = lambda *args: convolution_sums(*args, sender, receiver, rows)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, r, z))
    assert torch.autograd.gradgradcheck(f, (x, r, z))


def scalar_reference(x, r, y, deg, sender, receiver, rows=None):
    per_edge = (r if rows is None else r[rows])[:, deg, :]  # [E, D, C]
    messages = x[sender][:, None, :] * per_edge * y[:, :, None]
    return x.new_zeros(x.shape[0], y.shape[1], x.shape[1]).index_add(0, receiver, messages)


@pytest.mark.parametrize("shared", [False, True], ids=["row-per-edge", "shared-rows"])
def test_scalar_sums_and_derivatives(shared):
    gen = torch.Generator().manual_seed(2)
    n, e, c = 6, 25, 5
    deg = torch.tensor([0, 1, 1, 1, 2, 2, 2, 2, 2, 0, 0])  # components' radial degrees, padding columns on 0
    rows = torch.randint(0, 9, (e,), generator=gen) if shared else None
    x = torch.randn(n, c, dtype=torch.float64, generator=gen, requires_grad=True)
    r = torch.randn(9 if shared else e, 3, c, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.randn(e, len(deg), dtype=torch.float64, generator=gen, requires_grad=True)
    sender, receiver = torch.randint(0, n, (2, e), generator=gen)
    receiver[:3] = 5
    torch.testing.assert_close(
        scalar_sums(x, r, y, deg, sender, receiver, rows),
        scalar_reference(x, r, y, deg, sender, receiver, rows),
        rtol=0,
        atol=1e-12,
    )
    f = lambda *args: scalar_sums(*args[:3], deg, sender, receiver, rows)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, r, y))
    assert torch.autograd.gradgradcheck(f, (x, r, y))
    for bad in (deg + 2, deg - 1):  # past the radial degrees, or negative
        with pytest.raises(ValueError, match="degree_index"):
            scalar_sums(x, r, y, bad, sender, receiver, rows)
    with pytest.raises(ValueError, match="radial must be"):
        scalar_sums(x[:, :4], r, y, deg, sender, receiver, rows)


def test_edge_groups_match_a_stable_sort():
    gen = torch.Generator().manual_seed(3)
    index = torch.randint(0, 7, (40,), generator=gen)
    index[index == 4] = 5  # an empty group inside, and (with size 9) two empty ones at the end
    ptr, order = conv_kernel._csr(index, 9)
    assert torch.equal(order, torch.argsort(index, stable=True))
    assert torch.equal(
        ptr, torch.cat([torch.zeros(1, dtype=torch.int64), torch.bincount(index, minlength=9).cumsum(0)])
    )
    for bad in (9, -1):
        index[7] = bad
        with pytest.raises(ValueError, match="edge indices must lie in 0..8"):
            conv_kernel._csr(index, 9)


def test_points_must_be_padded():
    x, r, z = torch.randn(2, 1, 10), torch.randn(3, 4, 1), torch.randn(3, 4, 10)
    index = torch.zeros(3, dtype=torch.long)
    with pytest.raises(ValueError, match="multiple of 8"):
        convolution_sums(x, r, z, index, index)
    with pytest.raises(ValueError, match="pass radial_index"):
        convolution_sums(torch.randn(2, 1, 16), r[:2], torch.randn(3, 4, 16), index, index)


# node irreps: scalars only (a first layer: no grid in the kernels), scalars and vectors (with radial_per_input
# the scalars take the scalar kernels, the vectors the grid), and pseudoscalars beside scalars, edge degrees
# short of the output's (the output's l = 3 reached from l = 1 only)
CASES = {
    "scalars": (natural_irreps(0, 4), "0e + 1o + 2e + 3o", natural_irreps(3, 4)),
    "l<=1": (natural_irreps(1, 4), "0e + 1o + 2e + 3o", natural_irreps(3, 4)),
    "pseudo": ("4x0e + 4x0o + 4x1o", "0e + 1o + 2e", "4x0e + 4x1o + 4x2e + 4x3o + 4x1e + 4x2o"),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("radial_per_input", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_module_with_and_without_the_kernels(dtype, radial_per_input, case):
    conv = GauntConvolution(*CASES[case], form="grid", radial_per_input=radial_per_input).to(dtype)
    assert any(conv.scalar_pieces) == (case != "l<=1" or radial_per_input)  # the scalar kernels are taken
    gen = torch.Generator().manual_seed(1)
    pos = torch.randn(7, 3, dtype=torch.float64, generator=gen).to(dtype).requires_grad_(True)
    x = torch.randn(7, conv.irreps_node.dim, dtype=torch.float64, generator=gen).to(dtype).requires_grad_(True)
    edges = torch.randint(0, 7, (2, 30), generator=gen)
    edges = edges[:, edges[0] != edges[1]]  # forces through a zero-length edge are rounding noise in both paths
    weights = torch.randn(edges.shape[1], conv.weight_numel, dtype=torch.float64, generator=gen).to(dtype)
    results = []
    for use_kernel in (True, False):
        conv.use_kernel = use_kernel
        out = conv(x, pos[edges[1]] - pos[edges[0]], edges, weights)
        energy = (out * out).sum()
        (force,) = torch.autograd.grad(energy, pos, create_graph=True)
        (second,) = torch.autograd.grad((force * force).sum(), x)  # force training differentiates twice
        results.append((out, force, second))
    tol = 1e-11 if dtype == torch.float64 else 2e-4
    for kernel, eager in zip(*results):
        torch.testing.assert_close(kernel, eager, rtol=tol, atol=tol)


def test_zero_length_edges_stay_finite():
    conv = GauntConvolution(natural_irreps(1, 2), "0e + 1o + 2e", natural_irreps(2, 2), form="grid").double()
    pos = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    edges = torch.tensor([[0, 1, 2], [0, 2, 2]])  # two of them zero-length
    x = torch.randn(3, conv.irreps_node.dim, dtype=torch.float64)
    out = conv(x, pos[edges[1]] - pos[edges[0]], edges, torch.randn(3, conv.weight_numel, dtype=torch.float64))
    (force,) = torch.autograd.grad(out.square().sum(), pos)
    assert torch.isfinite(out).all() and torch.isfinite(force).all()


def test_backward_skips_gradients_no_one_reads(monkeypatch):
    """Forces with trainable node features: the node-value gradient is not computed (it is when asked for)."""
    calls = []
    evaluate = conv_kernel._evaluate
    monkeypatch.setattr(
        conv_kernel, "_evaluate", lambda missing, *args: calls.append(missing) or evaluate(missing, *args)
    )
    conv = GauntConvolution(natural_irreps(1, 4), "0e + 1o + 2e", natural_irreps(2, 4), form="grid").double()
    weight = torch.randn(7, conv.irreps_node.dim, dtype=torch.float64, requires_grad=True)  # a parameter's stand-in
    pos = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    edges = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6]])
    radial = torch.randn(6, conv.weight_numel, dtype=torch.float64)
    out = conv(weight * 1.0, pos[edges[1]] - pos[edges[0]], edges, radial)
    calls.clear()
    torch.autograd.grad(out.square().sum(), pos, retain_graph=True)
    assert "B" not in calls and "Z" in calls  # the node values' gradient skipped, the edge directions' computed
    calls.clear()
    torch.autograd.grad(out.square().sum(), weight)
    assert calls == ["B"]
