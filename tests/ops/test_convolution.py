import pytest
import torch

from gaunt_tp.ops import GauntConvolution
from gaunt_tp.ops.native import native_error
from gaunt_tp.testing import E3nnGauntConvolution, assert_equivariant

CASES = [
    ("4x0e + 4x1o", "1x0e + 1x1o + 1x2e", "4x0e + 4x1o + 4x2e"),
    ("3x0e + 3x1o + 3x2e + 3x1e", "1x0e + 1x1o + 1x2e + 1x3o", "3x0e + 3x1o + 3x2e + 3x3o + 3x1e + 3x2o"),
    ("2x0e", "1x1o + 1x3o", "2x1o + 2x3o"),  # scalars in, a gap in the edge degrees
]


def graph(n: int, e: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(n * 1000 + e)
    return torch.randn(e, 3, dtype=dtype, generator=g), torch.randint(0, n, (2, e), generator=g)


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
@pytest.mark.parametrize("chunk", [3, 1024])
def test_equals_e3nn_uvu_plus_scatter(case, chunk):
    conv = GauntConvolution(*case, edge_chunk=chunk)
    ref = E3nnGauntConvolution(*case)
    vectors, edge_index = graph(6, 17)
    x = torch.randn(6, conv.irreps_node.dim, dtype=torch.float64)
    radial = torch.randn(17, conv.weight_numel, dtype=torch.float64)
    out = conv(x, vectors, edge_index, radial)
    assert out.shape == (6, conv.irreps_out.dim)
    torch.testing.assert_close(out, ref(x, vectors, edge_index, radial), rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
@pytest.mark.parametrize("chunk", [3, 1024])
def test_radial_per_input_equals_e3nn_with_per_input_path_weights(case, chunk):
    conv = GauntConvolution(*case, edge_chunk=chunk, radial_per_input=True)
    ref = E3nnGauntConvolution(*case, radial_per_input=True)
    assert conv.form == "grid" and conv.weight_numel == len(conv.irreps_node) * len(conv.irreps_sh) * conv.channels
    vectors, edge_index = graph(6, 17)
    vectors[0] = 0.0  # zero-length edge: finite, l2 = 0 only, as without the option
    x = torch.randn(6, conv.irreps_node.dim, dtype=torch.float64)
    radial = torch.randn(17, conv.weight_numel, dtype=torch.float64)
    out = conv(x, vectors, edge_index, radial)
    assert torch.isfinite(out).all()
    keep = torch.ones(17, dtype=torch.bool)
    keep[0] = False  # e3nn's normalised harmonics are NaN for a zero vector: compare on the other edges
    ref_out = ref(x, vectors[keep], edge_index[:, keep], radial[keep])
    zero_edge = GauntConvolution(*case, radial_per_input=True)(x, vectors[:1], edge_index[:, :1], radial[:1])
    torch.testing.assert_close(out, ref_out + zero_edge, rtol=0, atol=1e-12)
    # with the same weight for every node irrep it is the plain convolution
    shared = torch.randn(17, len(conv.irreps_sh) * conv.channels, dtype=torch.float64)
    plain = GauntConvolution(*case, edge_chunk=chunk)(x, vectors, edge_index, shared)
    k, c = len(conv.irreps_node), conv.channels
    tiled = shared.view(17, -1, 1, c).expand(-1, -1, k, -1).reshape(17, -1)  # layout [l2, i1, c]
    torch.testing.assert_close(conv(x, vectors, edge_index, tiled), plain, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="grid form only"):
        GauntConvolution(*case, form="aligned", radial_per_input=True)


def test_radial_per_input_gradcheck_and_equivariance():
    conv = GauntConvolution("2x0e + 2x1o", "1x0e + 1x1o + 1x2e", "2x0e + 2x1o + 2x2e", radial_per_input=True)
    vectors, edge_index = graph(3, 5)
    x = torch.randn(3, conv.irreps_node.dim, dtype=torch.float64, requires_grad=True)
    radial = torch.randn(5, conv.weight_numel, dtype=torch.float64, requires_grad=True)
    vectors.requires_grad_(True)

    def fn(x, vectors, radial):
        return conv(x, vectors, edge_index, radial)

    assert torch.autograd.gradcheck(fn, (x, vectors, radial))
    assert torch.autograd.gradgradcheck(fn, (x, vectors, radial))
    edges8 = torch.randint(0, 8, (2, 8))  # assert_equivariant draws 8 nodes and 8 edge vectors
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        r = torch.randn(8, conv.weight_numel, dtype=dtype)
        err = assert_equivariant(
            lambda x, v: conv(x, v, edges8, r), [conv.irreps_node, "1x1o"], conv.irreps_out, dtype=dtype
        )
        assert err < tol


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_equivariant_in_node_features_and_edge_vectors(dtype):
    conv = GauntConvolution(*CASES[1])
    edge_index = torch.randint(0, 8, (2, 8))
    radial = torch.randn(8, conv.weight_numel, dtype=dtype)

    def fn(x, vectors):
        return conv(x, vectors, edge_index, radial)

    err = assert_equivariant(fn, [conv.irreps_node, "1x1o"], conv.irreps_out, dtype=dtype)
    assert err < (1e-12 if dtype == torch.float64 else 1e-6)


def test_gradcheck_and_gradgradcheck():
    conv = GauntConvolution("2x0e + 2x1o", "1x0e + 1x1o + 1x2e", "2x0e + 2x1o + 2x2e", edge_chunk=2)
    vectors, edge_index = graph(3, 5)
    x = torch.randn(3, conv.irreps_node.dim, dtype=torch.float64, requires_grad=True)
    radial = torch.randn(5, conv.weight_numel, dtype=torch.float64, requires_grad=True)
    vectors.requires_grad_(True)

    def fn(x, vectors, radial):
        return conv(x, vectors, edge_index, radial)

    assert torch.autograd.gradcheck(fn, (x, vectors, radial))
    assert torch.autograd.gradgradcheck(fn, (x, vectors, radial))


def test_zero_length_edge_is_finite_and_isotropic():
    conv = GauntConvolution(*CASES[0])
    x = torch.randn(2, conv.irreps_node.dim, dtype=torch.float64)
    vectors = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    edge_index = torch.tensor([[0], [1]])
    radial = torch.randn(1, conv.weight_numel, dtype=torch.float64)
    out = conv(x, vectors, edge_index, radial)
    (grad,) = torch.autograd.grad(out.sum(), vectors)
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    # only l2 = 0 contributes: the same as a conv with the l = 0 edge degree alone
    only_scalar = radial.clone()
    only_scalar[:, conv.channels :] = 0
    torch.testing.assert_close(out, conv(x, torch.randn(1, 3, dtype=torch.float64), edge_index, only_scalar))


@pytest.mark.parametrize("form, use_kernel", [("grid", True), ("grid", False), ("aligned", False)])
def test_shared_radial_rows_equal_gathered_rows(form, use_kernel):
    """``radial_index``: edges reading shared rows of radial weights, as a model does for edge pairs."""
    if use_kernel and native_error() is not None:
        pytest.skip(f"the C kernels are off here: {native_error()}")
    conv = GauntConvolution(*CASES[1], form=form).double()
    conv.use_kernel = use_kernel
    vec, edges = graph(5, 17)
    x = torch.randn(5, conv.irreps_node.dim, dtype=torch.float64, requires_grad=True)
    rows = torch.randn(6, conv.weight_numel, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 6, (17,), generator=torch.Generator().manual_seed(2))
    shared = conv(x, vec, edges, rows, radial_index=index)
    gathered = conv(x, vec, edges, rows.index_select(0, index))
    torch.testing.assert_close(shared, gathered, rtol=0, atol=1e-12)
    g = torch.randn_like(shared)
    grads = [torch.autograd.grad(out, (x, rows), g) for out in (shared, gathered)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="radial_index must point at rows 0..5"):
        conv(x, vec, edges, rows, radial_index=index + 1)
    with pytest.raises(ValueError, match="radial_index must be integer"):
        conv(x, vec, edges, rows, radial_index=index[:-1])


@pytest.mark.parametrize("use_kernel", [True, False])
def test_edge_cache_shared_by_two_convolutions_changes_nothing(use_kernel):
    """Two layers over one graph sharing zonal functions and edge groupings: same values, gradients and
    second derivatives as without the cache."""
    if use_kernel and native_error() is not None:
        pytest.skip(f"the C kernels are off here: {native_error()}")
    first = GauntConvolution("3x0e", "1x0e + 1x1o + 1x2e", "3x0e + 3x1o + 3x2e", form="grid").double()
    second = GauntConvolution("3x0e + 3x1o", "1x0e + 1x1o + 1x2e", "3x0e + 3x1o", form="grid").double()
    assert first.grid.size == second.grid.size  # one grid: the zonal functions can be shared
    for conv in (first, second):
        conv.use_kernel = use_kernel
    vec, edges = graph(5, 17)
    vec.requires_grad_(True)
    rows = torch.randn(9, first.weight_numel, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 9, (17,), generator=torch.Generator().manual_seed(3))
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)

    def two_layers(cache):
        h = first(x, vec, edges, rows, radial_index=index, edge_cache=cache)[:, :12]
        return second(h, vec, edges, rows, radial_index=index, edge_cache=cache)

    cache: dict = {}
    shared, alone = two_layers(cache), two_layers(None)
    assert len(cache) >= (2 if use_kernel else 0)  # zonal values and the receivers' grouping at least
    torch.testing.assert_close(shared, alone, rtol=0, atol=1e-12)
    g = torch.randn_like(shared)
    grads = [torch.autograd.grad(out, (x, vec, rows), g, create_graph=True) for out in (shared, alone)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    second_order = [torch.autograd.grad(gr[1].square().sum(), (x, rows)) for gr in grads]
    for a, b in zip(*second_order):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)


@pytest.mark.parametrize("form, use_kernel", [("grid", True), ("grid", False), ("aligned", False)])
def test_no_edges_gives_zeros(form, use_kernel):
    """No edges: zeros, still tied to the inputs, so that gradients (zero) and second derivatives go through every
    form as through e3nn's reference."""
    if use_kernel and native_error() is not None:
        pytest.skip(f"the C kernels are off here: {native_error()}")
    conv = GauntConvolution(*CASES[0], form=form).double()
    conv.use_kernel = use_kernel
    x = torch.randn(4, 16, dtype=torch.float64, requires_grad=True)
    vec = torch.zeros(0, 3, dtype=torch.float64, requires_grad=True)
    radial = torch.zeros(0, conv.weight_numel, dtype=torch.float64, requires_grad=True)
    out = conv(x, vec, torch.zeros(2, 0, dtype=torch.long), radial)
    assert out.shape == (4, 36) and out.abs().max() == 0
    grads = torch.autograd.grad(out.sum(), (x, vec, radial), create_graph=True)
    assert grads[0].shape == x.shape and all(g.abs().sum() == 0 for g in grads)


def test_bad_inputs_are_clear_errors():
    conv = GauntConvolution(*CASES[0])
    x, r = torch.randn(4, 16), torch.randn(3, conv.weight_numel)
    vec = torch.randn(3, 3)
    with pytest.raises(ValueError, match="outside 0..3"):
        conv(x, vec, torch.tensor([[0, 1, 4], [1, 2, 3]]), r)
    with pytest.raises(ValueError, match="outside 0..3"):
        conv(x, vec, torch.tensor([[0, -1, 2], [1, 2, 3]]), r)
    with pytest.raises(ValueError, match=r"edge_index must be \[2, E\]"):
        conv(x, vec, torch.tensor([[0, 1], [1, 2]]), r)
    with pytest.raises(ValueError, match="radial_weights"):
        conv(x, vec, torch.tensor([[0, 1, 2], [1, 2, 3]]), torch.randn(3, 5))
    with pytest.raises(ValueError, match="node_features"):
        conv(torch.randn(4, 15), vec, torch.tensor([[0, 1, 2], [1, 2, 3]]), r)
    with pytest.raises(TypeError, match="integers"):
        conv(x, vec, torch.tensor([[0.0, 1, 2], [1, 2, 3]]), r)
    with pytest.raises(ValueError, match="irreps_sh"):
        GauntConvolution("4x0e", "2x0e", "4x0e")
    with pytest.raises(ValueError, match="irreps_sh"):
        GauntConvolution("4x0e", "1x1e", "4x1e")
