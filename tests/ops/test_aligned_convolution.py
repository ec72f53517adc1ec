import pytest
import torch
from e3nn import o3

from gaunt_tp.math.aligned import quarter_turn
from gaunt_tp.ops import GauntConvolution
from gaunt_tp.ops.aligned import edge_frame_wigner
from gaunt_tp.testing import E3nnGauntConvolution, assert_equivariant

CASES = [
    ("4x0e + 4x1o", "1x0e + 1x1o + 1x2e", "4x0e + 4x1o + 4x2e"),
    ("3x0e + 3x1o + 3x2e + 3x1e", "1x0e + 1x1o + 1x2e + 1x3o", "3x0e + 3x1o + 3x2e + 3x3o + 3x1e + 3x2o"),
    ("2x0e", "1x1o + 1x3o", "2x1o + 2x3o"),  # scalars in, a gap in the edge degrees
    ("2x0e + 2x1o + 2x2e + 2x3o + 2x0o", "1x0e + 1x2e + 1x3o", "2x0e + 2x1o + 2x3o"),  # fewer degrees out than in
]
SPECIAL = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.7, 0.0], [0.0, -0.4, 0.0], [0.0, 0.0, -1.0], [1.0, 1.0, 0.0]])


def graph(n: int, e: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(n * 1000 + e)
    vectors = torch.randn(e, 3, dtype=torch.float64, generator=g)
    vectors[: len(SPECIAL)] = SPECIAL.to(torch.float64)  # zero-length, on the +-y axis, on the chart boundary
    return vectors.to(dtype), torch.randint(0, n, (2, e), generator=g)


def inputs(conv, n: int, e: int, dtype=torch.float64):
    vectors, edge_index = graph(n, e, dtype)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n, conv.irreps_node.dim, dtype=torch.float64, generator=g).to(dtype)
    radial = torch.randn(e, conv.weight_numel, dtype=torch.float64, generator=g).to(dtype)
    return x, vectors, edge_index, radial


def test_edge_frame_rotates_harmonics_onto_the_axis():
    u = torch.randn(300, 3, dtype=torch.float64)
    u = torch.cat([u / u.norm(dim=1, keepdim=True), SPECIAL[1:].to(torch.float64)])
    u = u / u.norm(dim=1, keepdim=True)
    degrees = list(range(8))
    wigner = edge_frame_wigner(u, degrees, {l: quarter_turn(l) for l in degrees})
    axis = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    for l in degrees:
        y_u = o3.spherical_harmonics(l, u, normalize=False, normalization="integral")
        y_axis = o3.spherical_harmonics(l, axis, normalize=False, normalization="integral")
        rotated = torch.einsum("eij,ej->ei", wigner[l], y_u)
        torch.testing.assert_close(rotated, y_axis.expand_as(y_u), rtol=0, atol=1e-13)
        eye = torch.eye(2 * l + 1, dtype=torch.float64)
        torch.testing.assert_close(wigner[l] @ wigner[l].transpose(1, 2), eye.expand_as(wigner[l]), rtol=0, atol=1e-13)
    # degree 1 is the rotation matrix itself: a proper rotation
    torch.testing.assert_close(torch.linalg.det(wigner[1]), torch.ones(len(u), dtype=torch.float64))


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
@pytest.mark.parametrize("chunk", [3, 1024])
def test_aligned_equals_grid_and_e3nn(case, chunk):
    aligned = GauntConvolution(*case, edge_chunk=chunk, form="aligned")
    grid = GauntConvolution(*case, edge_chunk=chunk, form="grid")
    assert (aligned.form, grid.form) == ("aligned", "grid")
    x, vectors, edge_index, radial = inputs(aligned, 6, 19)
    out = aligned(x, vectors, edge_index, radial)
    torch.testing.assert_close(out, grid(x, vectors, edge_index, radial), rtol=0, atol=1e-12)
    # e3nn has no zero-length convention of its own: compare on the non-zero edges
    ref = E3nnGauntConvolution(*case)
    keep = vectors.norm(dim=1) > 0
    expected = ref(x, vectors[keep], edge_index[:, keep], radial[keep])
    out = aligned(x, vectors[keep], edge_index[:, keep], radial[keep])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_aligned_equals_grid_in_float32(case):
    aligned = GauntConvolution(*case, form="aligned")
    grid = GauntConvolution(*case, form="grid")
    x, vectors, edge_index, radial = inputs(aligned, 6, 40, torch.float32)
    out, expected = aligned(x, vectors, edge_index, radial), grid(x, vectors, edge_index, radial)
    assert float((out - expected).abs().max() / expected.abs().max()) < 1e-5


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_aligned_is_equivariant(dtype):
    conv = GauntConvolution(*CASES[1], form="aligned")
    edge_index = torch.randint(0, 8, (2, 8))
    radial = torch.randn(8, conv.weight_numel, dtype=dtype)

    def fn(x, vectors):
        return conv(x, vectors, edge_index, radial)

    err = assert_equivariant(fn, [conv.irreps_node, "1x1o"], conv.irreps_out, dtype=dtype)
    assert err < (1e-12 if dtype == torch.float64 else 1e-6)


def test_gradcheck_and_gradgradcheck_with_axis_edges():
    conv = GauntConvolution(
        "2x0e + 2x1o + 2x1e", "1x0e + 1x1o + 1x2e", "2x0e + 2x1o + 2x2e + 2x1e", edge_chunk=3, form="aligned"
    )
    vectors, edge_index = graph(3, 7)
    vectors = vectors[1:]  # the on-axis edges (and one on the chart boundary) stay; zero-length tested below
    edge_index = edge_index[:, 1:]
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, conv.irreps_node.dim, dtype=torch.float64, generator=g, requires_grad=True)
    radial = torch.randn(6, conv.weight_numel, dtype=torch.float64, generator=g, requires_grad=True)
    vectors.requires_grad_(True)

    def fn(x, vectors, radial):
        return conv(x, vectors, edge_index, radial)

    assert torch.autograd.gradcheck(fn, (x, vectors, radial))
    assert torch.autograd.gradgradcheck(fn, (x, vectors, radial))


def test_gradients_on_axis_match_the_grid_form():
    # the frame changes chart near the poles; the function (and its derivatives) must not notice
    aligned = GauntConvolution(*CASES[0], form="aligned")
    grid = GauntConvolution(*CASES[0], form="grid")
    x, vectors, edge_index, radial = inputs(aligned, 6, 12)
    vectors = vectors[1:]
    edge_index, radial = edge_index[:, 1:], radial[1:]
    grads = []
    for conv in (aligned, grid):
        v = vectors.clone().requires_grad_(True)
        (force,) = torch.autograd.grad(conv(x, v, edge_index, radial).square().sum(), v, create_graph=True)
        (hess_row,) = torch.autograd.grad(force[:3].sum(), v)
        grads.append((force, hess_row))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=0, atol=1e-11)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=0, atol=1e-10)


def test_zero_length_edge_is_finite_and_isotropic():
    conv = GauntConvolution(*CASES[0], form="aligned")
    x = torch.randn(2, conv.irreps_node.dim, dtype=torch.float64)
    vectors = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    edge_index = torch.tensor([[0], [1]])
    radial = torch.randn(1, conv.weight_numel, dtype=torch.float64, requires_grad=True)
    out = conv(x, vectors, edge_index, radial)
    (grad,) = torch.autograd.grad(out.square().sum(), vectors, create_graph=True)
    (grad2,) = torch.autograd.grad(grad.sum(), radial, allow_unused=True)
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    assert grad2 is None or torch.isfinite(grad2).all()
    only_scalar = radial.detach().clone()
    only_scalar[:, conv.channels :] = 0
    torch.testing.assert_close(out, conv(x, torch.randn(1, 3, dtype=torch.float64), edge_index, only_scalar))


def test_form_validation_and_auto_pick():
    with pytest.raises(ValueError, match="'auto', 'grid', 'aligned'"):
        GauntConvolution(*CASES[0], form="escn")
    small = GauntConvolution("64x0e + 64x1o", "1x0e + 1x1o", "64x0e + 64x1o")
    large = GauntConvolution(*(" + ".join(f"{m}x{l}{'eo'[l % 2]}" for l in range(7)) for m in (64, 1, 64)))
    assert small.form == min(small.costs, key=small.costs.get)
    assert (small.form, large.form) == AUTO_PICKS


# benchmarks/bench_convolution.py on the CPU (C = 64, lmax 1..6): the grid form was 5-9x faster throughout
AUTO_PICKS = ("grid", "grid")
