import pytest
import torch
from e3nn import o3

from gaunt_tp.nn.linear import ElementLinear, EquivariantLinear, RowsLinear
from gaunt_tp.testing import assert_equivariant

LINEAR_CASES = [
    ("4x0e + 4x1o + 3x1o + 2x2e", "5x0e + 2x1o + 3x3o + 1x2e"),  # several inputs per output, an unreached output
    ("6x0e", "1x0e"),  # one block of scalars: a plain matrix product
    ("3x0o", "2x0o"),
    ("3x1e + 2x0o", "2x0o + 4x1e"),  # unnatural parities, outputs in another order
    ("0x0e + 4x1o + 2x0e", "2x1o + 3x0e + 0x2e"),  # multiplicity 0: no weights, as in e3nn
]
# the scalar blocks go through (x outer elements) @ W, the others through each atom's weights elements @ W first
ELEMENT_CASES = [
    ("4x0e + 4x1o", "4x0e + 4x1o + 4x2e"),
    ("4x0e", "4x0e + 4x1o"),
    ("2x0e + 3x1o + 2x1o", "5x1o + 1x0e"),
    ("2x0e + 0x1o", "0x0e + 3x1o + 2x0e"),
]


@pytest.mark.parametrize("irreps_in, irreps_out", LINEAR_CASES)
def test_linear_equals_e3nn_and_loads_its_weights(irreps_in, irreps_out):
    torch.manual_seed(0)
    ref = o3.Linear(irreps_in, irreps_out).double()
    mine = EquivariantLinear(irreps_in, irreps_out).double()
    mine.load_state_dict(ref.state_dict())  # e3nn's bias and output_mask entries are accepted
    x = torch.randn(2, 5, ref.irreps_in.dim, dtype=torch.float64)
    expected = ref(x)
    assert expected.abs().max() > 0
    torch.testing.assert_close(mine(x), expected, rtol=0, atol=1e-13)
    ref.load_state_dict(mine.state_dict(), strict=False)  # and the other way round
    torch.testing.assert_close(ref(x), mine(x), rtol=0, atol=1e-13)


@pytest.mark.parametrize("irreps_in, irreps_out", ELEMENT_CASES)
def test_element_linear_equals_e3nn_tensor_product_with_one_hot(irreps_in, irreps_out):
    torch.manual_seed(1)
    ref = o3.FullyConnectedTensorProduct(irreps_in, "3x0e", irreps_out).double()
    mine = ElementLinear(irreps_in, 3, irreps_out).double()
    mine.load_state_dict(ref.state_dict())
    x = torch.randn(6, ref.irreps_in1.dim, dtype=torch.float64)
    onehot = torch.nn.functional.one_hot(torch.tensor([0, 2, 1, 1, 0, 2]), 3).double()
    for elements in (onehot, torch.randn(6, 3, dtype=torch.float64)):
        expected = ref(x, elements)
        assert expected.abs().max() > 0
        torch.testing.assert_close(mine(x, elements), expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_equivariant(dtype):
    lin = EquivariantLinear(*LINEAR_CASES[0]).to(dtype)
    assert_equivariant(lin, [lin.irreps_in], lin.irreps_out, dtype=dtype)
    skip = ElementLinear("4x0e + 4x1o", 3, "4x0e + 4x1o").to(dtype)
    assert_equivariant(skip, [skip.irreps_in, "3x0e"], skip.irreps_out, dtype=dtype)  # elements: scalars


def test_gradients_twice():
    lin = EquivariantLinear("2x0e + 2x1o", "3x0e + 1x1o").double()
    skip = ElementLinear("2x0e + 2x1o", 2, "2x0e + 2x1o").double()
    x = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    e = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: torch.func.functional_call(lin, {"weight": w}, (x,)), (x, lin.weight))
    assert torch.autograd.gradgradcheck(lambda x: lin(x).square(), (x,))
    assert torch.autograd.gradcheck(skip, (x, e))
    assert torch.autograd.gradgradcheck(lambda x, e: skip(x, e).square(), (x, e))


def test_errors_name_the_expected_shape():
    lin = EquivariantLinear("2x0e + 2x1o", "2x0e")
    with pytest.raises(ValueError, match=r"\[\.\.\., 8\]"):
        lin(torch.randn(3, 7))
    skip = ElementLinear("2x0e", 3, "2x0e")
    with pytest.raises(ValueError, match=r"num_elements\] = \[4, 3\]"):
        skip(torch.randn(4, 2), torch.randn(4, 2))
    with pytest.raises(ValueError, match="num_elements"):
        ElementLinear("2x0e", 0, "2x0e")
    assert EquivariantLinear("2x0e", "3x1o")(torch.randn(5, 2)).abs().max() == 0  # no path: zeros


def to_rows(x: torch.Tensor, irreps: str, channels: int) -> torch.Tensor:
    """e3nn's layout -> the rows layout, written out from RowsLinear's docstring: irrep i of multiplicity k C as
    k (2l+1) rows of C channels (block k, then component m)."""
    blocks = []
    for (mul, ir), sl in zip(o3.Irreps(irreps), o3.Irreps(irreps).slices()):
        k = mul // channels
        block = x[:, sl].reshape(x.shape[0], k, channels, ir.dim).permute(0, 1, 3, 2)  # [n, k, m, c]
        blocks.append(block.reshape(x.shape[0], k * ir.dim, channels))
    return torch.cat(blocks, dim=1)


ROWS_CASES = [
    ("8x0e + 4x1o + 8x2e", "3x0e + 3x1o + 3x2e", "in", 4),  # blocks of two paths add up (MACE's irreps_mid)
    ("4x1o + 8x0e", "5x0e + 5x1o", "in", 4),  # irreps in another order on the two sides
    ("3x0e + 3x1o + 3x2e", "4x0e + 4x1o + 4x2e", "out", 4),
    ("3x1o + 3x0e", "4x0e + 4x1o", "out", 4),
    ("8x0e", "3x0e", "in", 4),  # scalars alone: no reordering on the e3nn side
    ("3x0e", "4x0e", "out", 4),
]


@pytest.mark.parametrize("irreps_in, irreps_out, rows, channels", ROWS_CASES)
def test_rows_linear_is_the_linear_map_in_the_rows_layout(irreps_in, irreps_out, rows, channels):
    torch.manual_seed(2)
    ref = EquivariantLinear(irreps_in, irreps_out).double()
    mine = RowsLinear(irreps_in, irreps_out, rows=rows, channels=channels).double()
    mine.load_state_dict(ref.state_dict())  # the same parameters
    x = torch.randn(5, ref.irreps_in.dim, dtype=torch.float64)
    if rows == "in":
        out = mine(to_rows(x, irreps_in, channels))
        expected = ref(x)
    else:
        out, expected = mine(x), to_rows(ref(x), irreps_out, channels)
    assert expected.abs().max() > 0
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-13)


def test_rows_linear_output_scale():
    """``output_scale`` multiplies the output and nothing else: same parameters, same state dict."""
    torch.manual_seed(3)
    plain = RowsLinear("4x0e + 4x1o", "4x0e + 4x1o", rows="out", channels=4).double()
    scaled = RowsLinear("4x0e + 4x1o", "4x0e + 4x1o", rows="out", channels=4, output_scale=0.25).double()
    scaled.load_state_dict(plain.state_dict())
    x = torch.randn(3, 16, dtype=torch.float64)
    torch.testing.assert_close(scaled(x), 0.25 * plain(x), rtol=0, atol=1e-15)
    assert scaled.state_dict().keys() == plain.state_dict().keys()


@pytest.mark.parametrize("case", [0, 3, 4])
def test_rows_linear_gradients_twice(case):
    irreps_in, irreps_out, rows, channels = ROWS_CASES[case]
    lin = RowsLinear(irreps_in, irreps_out, rows=rows, channels=channels).double()
    x = torch.randn(3, lin.irreps_in.dim, dtype=torch.float64)
    x = (to_rows(x, irreps_in, channels) if rows == "in" else x).requires_grad_()
    fn = lambda x, w: torch.func.functional_call(lin, {"weight": w}, (x,))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, lin.weight.detach().requires_grad_()))
    assert torch.autograd.gradgradcheck(lambda x: lin(x).square(), (x,))


def test_rows_linear_errors():
    with pytest.raises(ValueError, match="exactly one"):
        RowsLinear("4x0e + 4x0e", "4x0e", rows="in", channels=4)
    with pytest.raises(ValueError, match="multiples of 4"):
        RowsLinear("6x0e", "4x0e", rows="in", channels=4)
    with pytest.raises(ValueError, match="one multiplicity"):
        RowsLinear("4x0e + 4x1o", "4x0e + 2x1o", rows="in", channels=4)
    with pytest.raises(ValueError, match="rows must be"):
        RowsLinear("4x0e", "4x0e", rows="both", channels=4)
    lin = RowsLinear("8x0e + 4x1o", "4x0e + 4x1o", rows="in", channels=4)
    with pytest.raises(ValueError, match=r"rows \[N, 5, 4\]"):
        lin(torch.randn(2, 20))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rows_linear_equivariant(dtype):
    """Both directions at once: e3nn layout -> rows (rows='out') -> e3nn layout (rows='in')."""
    up = RowsLinear("3x0e + 3x1o + 3x2e", "4x0e + 4x1o + 4x2e", rows="out", channels=4).to(dtype)
    down = RowsLinear("4x0e + 4x1o + 4x2e", "2x0e + 2x1o + 2x2e", rows="in", channels=4).to(dtype)
    err = assert_equivariant(lambda x: down(up(x)), [up.irreps_in], down.irreps_out, dtype=dtype)
    assert err < (1e-12 if dtype == torch.float64 else 1e-6)
