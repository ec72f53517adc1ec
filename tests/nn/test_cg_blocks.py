"""CGConvolution (MACE's per-path convolution in coupled form) against e3nn's TensorProduct + scatter-sum."""

import pytest
import torch
from e3nn import o3

from gaunt_tp.nn.cg_blocks import CGConvolution
from gaunt_tp.ops.convolution import safe_unit_vectors
from gaunt_tp.testing import assert_equivariant

CASES = [
    ("4x0e + 4x1o", "1x0e + 1x1o + 1x2e + 1x3o", "4x0e + 4x1o + 4x2e + 4x3o"),  # MACE's max_L 1 layer
    ("3x0e + 3x1o + 3x2e", "1x0e + 1x1o + 1x2e", "3x0e + 3x1o + 3x1e + 3x2e"),  # a pseudovector output (1o x 1o)
    # MACE's max_L 2 second layer with each path its own output block (irreps_mid), e3nn's per-path weights
    ("3x0e + 3x1o + 3x2e", "1x0e + 1x1o + 1x2e + 1x3o", "3x0e + 3x1o + 3x2e + 3x3o", {"separate_paths": True}),
]


def build(case) -> CGConvolution:
    """The case's convolution (an optional fourth entry holds keyword options)."""
    return CGConvolution(*case[:3], **(case[3] if len(case) > 3 else {}))


def e3nn_reference(conv: CGConvolution, x, vectors, edge_index, radial):
    """e3nn's TensorProduct on the same paths, fed e3nn's component-normalised harmonics, scatter-summed."""
    instructions = [(i1, i2, io, "uvu", True) for i1, i2, io in conv.paths]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn computes its Wigner 3j symbols in the default dtype
    tp = o3.TensorProduct(conv.irreps_node, conv.irreps_sh, conv.irreps_out, instructions, shared_weights=False,
                          internal_weights=False).to(x.dtype)  # fmt: skip
    torch.set_default_dtype(previous)
    sh = o3.spherical_harmonics(conv.irreps_sh, safe_unit_vectors(vectors)[0], False, normalization="component")
    out = x.new_zeros(x.shape[0], conv.irreps_out.dim)
    return out.index_add(0, edge_index[1], tp(x[edge_index[0]], sh, radial))


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_equals_e3nn_tensor_product_plus_scatter(case):
    g = torch.Generator().manual_seed(7)
    conv = build(case)
    vectors, edge_index = (
        torch.randn(19, 3, dtype=torch.float64, generator=g),
        torch.randint(0, 6, (2, 19), generator=g),
    )
    x = torch.randn(6, conv.irreps_node.dim, dtype=torch.float64, generator=g)
    radial = torch.randn(19, conv.weight_numel, dtype=torch.float64, generator=g)
    expected = e3nn_reference(conv, x, vectors, edge_index, radial)
    torch.testing.assert_close(conv(x, vectors, edge_index, radial), expected, rtol=0, atol=1e-12)
    rows, index = radial[:10], torch.randint(0, 10, (19,), generator=g)  # rows shared by edges
    torch.testing.assert_close(
        conv(x, vectors, edge_index, rows, radial_index=index),
        e3nn_reference(conv, x, vectors, edge_index, rows[index]),
        rtol=0,
        atol=1e-12,
    )


@pytest.mark.parametrize("case", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_equivariant_in_node_features_and_edge_vectors(dtype, case):
    conv = build(CASES[case])
    edge_index = torch.randint(0, 8, (2, 8), generator=torch.Generator().manual_seed(1))
    radial = torch.randn(8, conv.weight_numel, dtype=dtype)
    err = assert_equivariant(lambda x, v: conv(x, v, edge_index, radial), [conv.irreps_node, "1x1o"], conv.irreps_out,
                             dtype=dtype)  # fmt: skip
    assert err < (1e-12 if dtype == torch.float64 else 1e-6)


def test_bad_inputs_are_clear_errors():
    conv = CGConvolution(*CASES[0])
    x, v, ei = torch.randn(3, conv.irreps_node.dim), torch.randn(4, 3), torch.randint(0, 3, (2, 4))
    r = torch.randn(4, conv.weight_numel)
    with pytest.raises(ValueError, match="node_features must be"):
        conv(x[:, :-1], v, ei, r)
    with pytest.raises(ValueError, match=r"radial_weights must be \[E, 40\] = \[4, \(number of paths\) \* C\]"):
        conv(x, v, ei, r[:, :-1])
    with pytest.raises(ValueError, match="outside 0..2"):
        conv(x, v, ei + 3, r)
    with pytest.raises(TypeError, match="share a dtype"):
        conv(x, v.double(), ei, r)


def test_bad_multiplicities_are_clear_errors():
    with pytest.raises(ValueError, match="one multiplicity C"):
        CGConvolution("4x0e + 2x1o", "1x0e + 1x1o", "4x0e + 4x1o")
    with pytest.raises(ValueError, match="no path"):
        CGConvolution("4x0e", "1x1o", "4x0e")


@pytest.mark.parametrize("case", [1, 2])
@pytest.mark.parametrize("use_kernel", [True, False], ids=["kernel", "pytorch"])
def test_gradcheck_and_gradgradcheck_with_shared_rows(use_kernel, case, monkeypatch):
    """Both forms (the C kernels' and PyTorch's) to second order in every input, rows shared by edges."""
    conv = build(CASES[case])
    if use_kernel and not conv.use_kernel:
        pytest.skip("the C kernels do not build here")
    monkeypatch.setattr(conv, "use_kernel", use_kernel)
    g = torch.Generator().manual_seed(3)
    edge_index = torch.randint(0, 4, (2, 7), generator=g)
    index = torch.randint(0, 5, (7,), generator=g)
    inputs = (
        torch.randn(4, conv.irreps_node.dim, dtype=torch.float64, generator=g).requires_grad_(),
        torch.randn(7, 3, dtype=torch.float64, generator=g).requires_grad_(),
        torch.randn(5, conv.weight_numel, dtype=torch.float64, generator=g).requires_grad_(),
    )

    def fn(x, v, r):
        return conv(x, v, edge_index, r, radial_index=index)

    assert torch.autograd.gradcheck(fn, inputs, atol=1e-8)
    assert torch.autograd.gradgradcheck(fn, inputs, atol=1e-7)


@pytest.mark.parametrize("case", [0, 2])
def test_kernel_and_pytorch_forms_agree_in_float32(monkeypatch, case):
    conv = build(CASES[case])
    if not conv.use_kernel:
        pytest.skip("the C kernels do not build here")
    g = torch.Generator().manual_seed(4)
    x = torch.randn(9, conv.irreps_node.dim, generator=g)
    vectors, edge_index = torch.randn(40, 3, generator=g), torch.randint(0, 9, (2, 40), generator=g)
    radial = torch.randn(40, conv.weight_numel, generator=g)
    fast = conv(x, vectors, edge_index, radial)
    monkeypatch.setattr(conv, "use_kernel", False)
    torch.testing.assert_close(fast, conv(x, vectors, edge_index, radial), rtol=1e-5, atol=1e-5)


def test_coupled_sums_rejects_paths_outside_the_tensors():
    from gaunt_tp.ops.conv_kernel import coupled_sums

    values, radial, couplings = torch.zeros(2, 4, 3), torch.zeros(5, 1, 3), torch.zeros(5, 9)
    edges = torch.zeros(5, dtype=torch.int64)
    for bad in ([2, 3, 0, 3, 0], [0, 3, 2, 3, 0], [0, 3, 0, 3, 1], [-1, 3, 0, 3, 0]):  # in, out, couplings, negative
        with pytest.raises(ValueError, match="paths point outside"):
            coupled_sums(values, radial, couplings, torch.tensor([bad]), 4, edges, edges)
    with pytest.raises(ValueError, match=r"paths must be \[P, 5\]"):
        coupled_sums(values, radial, couplings, torch.zeros(2, 5, dtype=torch.int64), 4, edges, edges)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_kernels_over_full_and_partial_channel_blocks(dtype, monkeypatch):
    """70 channels: the node and sender kernels' blocks of 256 bytes (64 floats, 32 doubles) whole, then a partial
    one. Output, first derivatives in every input and a second derivative (force training) against PyTorch's form."""
    conv = CGConvolution("70x0e + 70x1o", "1x0e + 1x1o + 1x2e", "70x0e + 70x1o + 70x2e")
    if not conv.use_kernel:
        pytest.skip("the C kernels do not build here")
    g = torch.Generator().manual_seed(8)
    edge_index = torch.randint(0, 5, (2, 12), generator=g)
    inputs = [torch.randn(5, conv.irreps_node.dim, dtype=torch.float64, generator=g),
              torch.randn(12, 3, dtype=torch.float64, generator=g),
              torch.randn(12, conv.weight_numel, dtype=torch.float64, generator=g)]  # fmt: skip
    cotangent = torch.randn(5, conv.irreps_out.dim, dtype=torch.float64, generator=g).to(dtype)

    def derivatives(use_kernel):
        monkeypatch.setattr(conv, "use_kernel", use_kernel)
        x, v, r = (t.to(dtype).requires_grad_() for t in inputs)
        out = conv(x, v, edge_index, r)
        first = torch.autograd.grad((out * cotangent).sum(), (x, v, r), create_graph=True)
        second = torch.autograd.grad(first[1].square().sum(), (x, v, r))  # as forces enter a loss
        return (out, *first, *second)

    tol = 1e-11 if dtype == torch.float64 else 2e-5
    for got, want in zip(derivatives(True), derivatives(False)):
        torch.testing.assert_close(got, want, rtol=tol, atol=tol * float(want.abs().max()))


@pytest.mark.parametrize("case", [0, 2])
@pytest.mark.parametrize("use_kernel", [True, False], ids=["kernel", "pytorch"])
def test_forward_rows_is_forward_in_the_rows_layout(use_kernel, case, monkeypatch):
    """``forward_rows`` takes and returns the rows layout (each irrep as 2l+1 rows of C channels, the k path blocks of
    one output irrep after another), in both forms."""
    conv = build(CASES[case])
    if use_kernel and not conv.use_kernel:
        pytest.skip("the C kernels do not build here")
    monkeypatch.setattr(conv, "use_kernel", use_kernel)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, conv.irreps_node.dim, dtype=torch.float64, generator=g)
    vectors = torch.randn(21, 3, dtype=torch.float64, generator=g)
    edge_index = torch.randint(0, 6, (2, 21), generator=g)
    radial = torch.randn(21, conv.weight_numel, dtype=torch.float64, generator=g)
    c = conv.channels

    def rows(t, irreps):  # e3nn layout -> rows, one irrep block of multiplicity C at a time
        blocks = [t[:, sl].view(len(t), c, ir.dim).transpose(1, 2) for (_, ir), sl in zip(irreps, irreps.slices())]
        return torch.cat(blocks, dim=1)

    out = conv.forward_rows(rows(x, conv.irreps_node), vectors, edge_index, radial)
    torch.testing.assert_close(out, rows(conv(x, vectors, edge_index, radial), conv.irreps_out), rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="node_rows must be"):
        conv.forward_rows(x, vectors, edge_index, radial)


def test_harmonics_must_have_natural_parity():
    with pytest.raises(ValueError, match="parity"):
        CGConvolution("4x0e + 4x1o", "1x0e + 1x1e", "4x0e + 4x1e")
