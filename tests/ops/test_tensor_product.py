import pytest
import torch

from gaunt_tp import GauntTensorProduct
from gaunt_tp.ops import BACKENDS
from gaunt_tp.ops.native import native_error
from gaunt_tp.testing import E3nnGauntReference, assert_equivariant, natural_irreps

CASES = [
    # (irreps_in1, irreps_in2, irreps_out)
    (natural_irreps(2, 3), natural_irreps(2, 3), natural_irreps(4, 3)),  # full product
    (natural_irreps(3, 2), natural_irreps(1, 2), natural_irreps(2, 2)),  # truncated output
    ("2x0e + 2x1e + 2x2o", "2x1o + 2x0o", "2x1o + 2x0o + 2x2e + 2x3e + 2x1e + 2x2o"),  # pseudo parity
    ("2x3o + 2x1o", "2x2e", "2x5o + 2x1o + 2x3o"),  # gaps in degrees, unsorted
    ("2x1o", "2x1o", "2x2e + 2x0e"),  # output order differs from degree order
    ("3x0e", "3x0e", "3x0e"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_equals_e3nn_in_float64(backend, case):
    tp = GauntTensorProduct(*case, backend=backend)
    ref = E3nnGauntReference(*case)
    x1 = torch.randn(7, tp.irreps_in1.dim, dtype=torch.float64)
    x2 = torch.randn(7, tp.irreps_in2.dim, dtype=torch.float64)
    out = tp(x1, x2)
    assert out.dtype == torch.float64 and out.shape == (7, tp.irreps_out.dim)
    torch.testing.assert_close(out, ref(x1, x2), rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("lmax", [1, 4, 6])
def test_equals_dense_oracle_in_float32(backend, lmax):
    irreps = natural_irreps(lmax, 4)
    tp = GauntTensorProduct(irreps, irreps, irreps, backend=backend)
    oracle = GauntTensorProduct(irreps, irreps, irreps, backend="dense")
    x1, x2 = torch.randn(2, 9, tp.irreps_in1.dim, dtype=torch.float64)
    expected = oracle(x1, x2)
    out = tp(x1.float(), x2.float())
    assert out.dtype == torch.float32
    err = (out.double() - expected).abs().max() / expected.abs().max()
    assert err < 1e-6
    torch.testing.assert_close(tp(x1, x2), expected, rtol=0, atol=1e-12 * expected.abs().max().item())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", [CASES[0], CASES[2]], ids=["natural", "pseudo"])
def test_equivariant_under_rotations_and_inversion(backend, dtype, case):
    tp = GauntTensorProduct(*case, backend=backend)
    err = assert_equivariant(tp, [tp.irreps_in1, tp.irreps_in2], tp.irreps_out, dtype=dtype)
    assert err < (1e-12 if dtype == torch.float64 else 1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_broadcasting_of_batch_dims_and_of_a_single_channel(backend):
    tp = GauntTensorProduct(natural_irreps(2, 1), natural_irreps(2, 4), natural_irreps(3, 4), backend=backend)
    oracle = GauntTensorProduct(natural_irreps(2, 1), natural_irreps(2, 4), natural_irreps(3, 4), backend="dense")
    x1 = torch.randn(3, 1, tp.irreps_in1.dim, dtype=torch.float64)
    x2 = torch.randn(1, 5, tp.irreps_in2.dim, dtype=torch.float64)
    out = tp(x1, x2)
    assert out.shape == (3, 5, tp.irreps_out.dim)
    # against an explicit loop with the multiplicity-1 input repeated channel by channel
    full = GauntTensorProduct(natural_irreps(2, 4), natural_irreps(2, 4), natural_irreps(3, 4), backend="dense")
    x1_rep = torch.cat([x1[..., l * l : (l + 1) ** 2].repeat_interleave(1, -1).repeat(1, 1, 4) for l in range(3)], -1)
    torch.testing.assert_close(out, full(x1_rep.expand(3, 5, -1), x2.expand(3, 5, -1)), rtol=0, atol=1e-12)
    torch.testing.assert_close(out, oracle(x1, x2), rtol=0, atol=1e-12)
    # no batch dims at all
    single = tp(x1[0, 0], x2[0, 0])
    torch.testing.assert_close(single, out[0, 0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_and_gradgradcheck(backend):
    tp = GauntTensorProduct("2x0e + 2x1o + 2x2e", "2x0e + 2x1o", "2x1o + 2x2e + 2x3o", backend=backend)
    x1 = torch.randn(3, tp.irreps_in1.dim, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(3, tp.irreps_in2.dim, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tp, (x1, x2))
    assert torch.autograd.gradgradcheck(tp, (x1, x2))


def test_backward_is_the_same_for_every_backend():
    irreps = natural_irreps(3, 3)
    x1, x2, cot = (torch.randn(4, 48, dtype=torch.float64) for _ in range(3))
    grads = {}
    backends = [b for b in BACKENDS if b != "fused" or native_error() is None]
    for backend in backends:
        a, b = x1.clone().requires_grad_(), x2.clone().requires_grad_()
        out = GauntTensorProduct(irreps, irreps, irreps, backend=backend)(a, b)
        ga, gb = torch.autograd.grad((out * cot).sum(), (a, b), create_graph=True)
        gga = torch.autograd.grad((ga**2).sum() + gb.sum(), a)[0]
        grads[backend] = (ga, gb, gga)
    for backend in backends:
        for got, ref in zip(grads[backend], grads["dense"]):
            torch.testing.assert_close(got, ref, rtol=0, atol=1e-11)


def test_bad_inputs_are_clear_errors():
    tp = GauntTensorProduct(natural_irreps(1, 2), natural_irreps(1, 2), natural_irreps(2, 2))
    x = torch.randn(4, 8)
    with pytest.raises(ValueError, match=r"x1 must have shape \[\.\.\., 8\]"):
        tp(torch.randn(4, 7), x)
    with pytest.raises(ValueError, match="do not broadcast"):
        tp(torch.randn(4, 8), torch.randn(3, 8))
    with pytest.raises(TypeError, match="same dtype"):
        tp(x, x.double())
    with pytest.raises(TypeError, match="torch.Tensor"):
        tp(x.numpy(), x)  # type: ignore[arg-type]
    for odd_paths in (False, True):  # no outputs: the same message with parity-odd paths or without
        with pytest.raises(ValueError, match="irreps_out is empty; a Gaunt product needs at least one irrep"):
            GauntTensorProduct("1x1o", "1x1o", "", odd_paths=odd_paths)


def test_auto_backend_reports_its_choice():
    small = GauntTensorProduct(natural_irreps(1, 4), natural_irreps(1, 4), natural_irreps(1, 4))
    big = GauntTensorProduct(natural_irreps(6, 4), natural_irreps(6, 4), natural_irreps(6, 4))
    for tp in (small, big):
        assert tp.backend in BACKENDS
        x = torch.randn(256, tp.irreps_in1.dim)
        out = tp(x, x)
        chosen = tp.backend
        fixed = GauntTensorProduct(tp.irreps_in1, tp.irreps_in2, tp.irreps_out, backend=chosen)
        torch.testing.assert_close(out, fixed(x, x))
    # dense costs O(L^6): never picked at lmax 6; the fused kernel wins on a CPU where it builds
    assert big.backend == ("fused" if native_error() is None else "grid")
    fixed = GauntTensorProduct(natural_irreps(1, 4), natural_irreps(1, 4), natural_irreps(1, 4), backend="fft")
    assert fixed.backend == "fft"


def test_auto_backend_picks_only_backends_that_run_on_the_inputs():
    """The fused kernel takes CPU float32/float64 only: half precision and other devices get another backend
    (the same values as the reference, to half precision)."""
    tp = GauntTensorProduct(natural_irreps(6, 4), natural_irreps(6, 4), natural_irreps(6, 4))
    x = torch.randn(64, tp.irreps_in1.dim)
    exact = tp(x, x)
    for dtype in (torch.bfloat16, torch.float16):
        out = tp(x.to(dtype), x.to(dtype))
        assert tp.backend != "fused" and out.dtype == dtype
        torch.testing.assert_close(out.float(), exact, rtol=0.05, atol=0.05 * float(exact.abs().max()))
    assert tp(x.to("meta"), x.to("meta")).shape == exact.shape and tp.backend != "fused"


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batch(backend):
    tp = GauntTensorProduct(natural_irreps(2, 2), natural_irreps(1, 2), natural_irreps(2, 2), backend=backend)
    x1 = torch.randn(0, tp.irreps_in1.dim, requires_grad=True)
    out = tp(x1, torch.randn(3, 0, tp.irreps_in2.dim))
    assert out.shape == (3, 0, tp.irreps_out.dim)
    (grad,) = torch.autograd.grad(out.sum(), x1)
    assert grad.shape == x1.shape


@pytest.mark.parametrize("backend", BACKENDS)
def test_torch_compile(backend):
    tp = GauntTensorProduct(natural_irreps(2, 2), natural_irreps(2, 2), natural_irreps(2, 2), backend=backend)
    x1, x2 = torch.randn(2, 5, tp.irreps_in1.dim)
    compiled = torch.compile(tp, fullgraph=False)
    torch.testing.assert_close(compiled(x1, x2), tp(x1, x2), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "fused"])  # fused: CPU only
def test_cuda_matches_cpu(backend):
    tp = GauntTensorProduct(natural_irreps(3, 4), natural_irreps(3, 4), natural_irreps(3, 4), backend=backend)
    x1, x2 = torch.randn(2, 6, tp.irreps_in1.dim, dtype=torch.float64)
    expected = tp(x1, x2)
    out = tp.cuda()(x1.cuda(), x2.cuda())
    torch.testing.assert_close(out.cpu(), expected, rtol=0, atol=1e-12)
